// Running nbdkit with the stillpoint plugin: one read-only NBD export of one volume of one
// recovery point, on a unix socket or a TCP port of 127.0.0.1.
//
// nbdkit runs as our child with --exit-with-parent, so it never outlives the process that started
// it, however that process ends. nbdkit ties its life to the *thread* that forked it (Linux's
// parent-death signal); Server therefore forks it from one process-wide thread that lives as long
// as the process, and any thread (a CLI's main thread, a service job) may start and stop servers.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "platform/clock.h"
#include "platform/status.h"

namespace sp::nbd {

inline constexpr char kPluginFileName[] = "nbdkit-stillpoint-plugin.so";
// Overrides where the plugin is looked for (tests, or a plugin installed elsewhere).
inline constexpr char kPluginEnv[] = "STILLPOINT_NBD_PLUGIN";

// The plugin: $STILLPOINT_NBD_PLUGIN, else beside the running executable (the build tree), else
// <executable's dir>/../lib/stillpoint/ (the Debian package: /usr/lib/stillpoint/). NotFound naming
// the places looked in.
StatusOr<std::string> PluginPath();

struct ServerOptions {
  std::string repo_path;    // the repository's directory
  std::string key_file;     // an encrypted repository's master key; empty otherwise
  std::string point_id;     // the full id
  std::string volume;       // also the export's name
  std::string socket_path;  // unix socket to listen on (used when port == 0)
  int port = 0;             // TCP port on 127.0.0.1 instead of a unix socket
  std::string work_dir;     // private directory for nbdkit's log and pid file; removed on Stop
  std::string plugin_path;  // empty: PluginPath()
  Millis start_timeout{15'000};
};

class Server {
 public:
  // Starts nbdkit and returns once it accepts connections (it has written its pid file).
  // NotFound when nbdkit or the plugin is missing; Unavailable when nbdkit ended or did not get
  // ready in time (its log — e.g. the plugin's "no volume 'x'" — is in the message).
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options);
  ~Server();  // stops the server
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "nbd+unix:///VOLUME?socket=PATH" or "nbd://127.0.0.1:PORT/VOLUME".
  const std::string& uri() const { return uri_; }
  pid_t pid() const { return pid_; }
  // True while nbdkit runs (reaps it once it has ended).
  bool Running();
  // nbdkit's log so far ("" when there is none).
  std::string Log() const;
  // Stops nbdkit (SIGTERM, then SIGKILL after 10 s) and removes the work directory. Idempotent.
  Status Stop();

 private:
  Server() = default;

  pid_t pid_ = -1;
  std::string uri_;
  std::string work_dir_;
  std::string socket_path_;
};

}  // namespace sp::nbd
