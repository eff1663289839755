// Serving one volume of a recovery point read-only over NBD, so that standard tools (qemu-img,
// qemu-nbd --connect, nbdfuse, guestmount) can read it.
//
// How: the volume is materialized as a sparse raw file in a private work directory (zero chunks
// stay holes, so this costs only the point's data), and a read-only qemu-nbd serves that file.
// Why not an nbdkit plugin reading the repository directly: nbdkit is not among the packages this
// project builds with, and a plugin would be a shared object pulling the whole repository stack
// (static libraries built without -fPIC today) into nbdkit's process. qemu-nbd is already a
// dependency, is well kept, refuses writes on a read-only export (-r), and reports holes through
// NBD block status, which qemu-img convert uses to skip them.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "platform/status.h"
#include "repo/repository.h"

namespace sp::restore {

struct ServeOptions {
  std::string socket_path;  // unix socket to listen on (used when port == 0)
  int port = 0;             // TCP port on 127.0.0.1 instead of a unix socket
  std::string work_dir;     // private directory for the materialized volume; removed on Stop
};

class VolumeServer {
 public:
  // Materializes `volume` of `point_id` and starts serving it under the export name `volume`.
  // Returns once the server accepts connections. NotFound for an unknown point or volume;
  // Unavailable when qemu-nbd did not come up (its log is in the message). qemu-nbd gets SIGTERM
  // when the thread that called Start exits (PR_SET_PDEATHSIG), even by SIGKILL of the process.
  // REQUIRES: call from a thread that lives as long as the server should (the main thread).
  static StatusOr<std::unique_ptr<VolumeServer>> Start(repo::Repository& repo,
                                                       absl::string_view point_id,
                                                       absl::string_view volume,
                                                       const ServeOptions& options);
  ~VolumeServer();  // stops the server

  // "nbd+unix:///VOLUME?socket=PATH" or "nbd://127.0.0.1:PORT/VOLUME".
  const std::string& uri() const { return uri_; }
  const std::string& export_name() const { return export_name_; }
  uint64_t size() const { return size_; }
  // True while the server process runs (reaps it once it has ended).
  bool Running();
  // Stops the server and removes the work directory. Idempotent.
  Status Stop();

 private:
  VolumeServer() = default;

  pid_t pid_ = -1;
  std::string uri_;
  std::string export_name_;
  std::string work_dir_;
  std::string socket_path_;
  uint64_t size_ = 0;
};

}  // namespace sp::restore
