#include "nbd/server.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <optional>
#include <thread>
#include <tuple>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "platform/environment.h"
#include "platform/files.h"
#include "platform/process.h"

namespace sp::nbd {
namespace {

constexpr Millis kStopTimeout{10'000};

// Forks children from one thread that lives as long as the process, so that a child whose life
// is tied to its parent *thread* (nbdkit --exit-with-parent: Linux's PR_SET_PDEATHSIG) lives as
// long as the process, whichever thread asked for it.
class Spawner {
 public:
  static Spawner& Get() {
    static Spawner* spawner = new Spawner();  // never destroyed: its thread never ends
    return *spawner;
  }

  StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
    Job job{&argv, &options, std::nullopt};
    absl::MutexLock lock(&mutex_);
    jobs_.push_back(&job);
    mutex_.Await(absl::Condition(
        +[](Job* j) { return j->result.has_value(); }, &job));
    return *std::move(job.result);
  }

 private:
  struct Job {
    const std::vector<std::string>* argv;
    const SpawnOptions* options;
    std::optional<StatusOr<pid_t>> result;
  };

  Spawner() {
    std::thread thread([this] { Loop(); });
    ::pthread_setname_np(thread.native_handle(), "sp-spawner");
    thread.detach();
  }

  void Loop() {
    while (true) {
      Job* job = nullptr;
      {
        absl::MutexLock lock(&mutex_);
        mutex_.Await(absl::Condition(
            +[](std::deque<Job*>* jobs) { return !jobs->empty(); }, &jobs_));
        job = jobs_.front();
        jobs_.pop_front();
      }
      StatusOr<pid_t> pid = sp::Spawn(*job->argv, *job->options);
      absl::MutexLock lock(&mutex_);
      job->result = std::move(pid);
    }
  }

  absl::Mutex mutex_;
  std::deque<Job*> jobs_ ABSL_GUARDED_BY(mutex_);
};

bool Readable(const std::string& path) { return ::access(path.c_str(), R_OK) == 0; }

// nbdkit 1.32.4 to 1.33.9 abort when a client hangs up while several of its requests are being
// answered ("raw_send_socket: Assertion `sock >= 0' failed", Red Hat bug 2173054; fixed in
// 1.33.10 by "server: Don't assert on send if client hangs up early"). Debian 12 has 1.32.5.
// One thread per connection avoids the race: requests of one client are then answered in turn
// (a request's chunks still decode in parallel, sequential readers are still read ahead, and
// clients such as nbdcopy open several connections since the export allows multi-conn).
bool NbdkitHasHangUpAbort() {
  static const bool affected = [] {
    auto version = RunCommandOk({"nbdkit", "--version"}, Deadline::In(Millis(10'000)));
    int major = 0, minor = 0, micro = 0;
    if (!version.ok() ||
        std::sscanf(version->c_str(), "nbdkit %d.%d.%d", &major, &minor, &micro) != 3) {
      return true;  // unknown: the safe choice
    }
    auto at_least = [&](int a, int b, int c) {
      return std::tie(major, minor, micro) >= std::make_tuple(a, b, c);
    };
    return at_least(1, 32, 4) && !at_least(1, 33, 10);
  }();
  return affected;
}

std::vector<std::string> NbdkitArgv(const ServerOptions& options, const std::string& plugin,
                                    const std::string& pid_file, const std::string& socket) {
  std::vector<std::string> argv = {"nbdkit",
                                   "--exit-with-parent",  // implies --foreground: our child
                                   "--readonly", "--log=stderr", "--pidfile=" + pid_file};
  if (NbdkitHasHangUpAbort()) argv.push_back("--threads=1");
  if (options.port == 0) {
    argv.insert(argv.end(), {"--unix", socket});
  } else {
    argv.insert(argv.end(), {"--ipaddr", "127.0.0.1", "--port", absl::StrCat(options.port)});
  }
  argv.insert(argv.end(), {plugin, "repo=" + options.repo_path, "point=" + options.point_id,
                           "volume=" + options.volume});
  if (!options.key_file.empty()) argv.push_back("key-file=" + options.key_file);
  return argv;
}

}  // namespace

StatusOr<std::string> PluginPath() {
  if (std::optional<std::string> path = GetEnv(kPluginEnv); path && !path->empty()) {
    if (Readable(*path)) return *path;
    return absl::NotFoundError(
        absl::StrCat("the NBD plugin ", *path, " (from $", kPluginEnv, ") does not exist"));
  }
  SP_ASSIGN_OR_RETURN(std::string self, SelfExecutable());
  std::string dir = self.substr(0, self.rfind('/'));
  std::vector<std::string> candidates = {dir + "/" + kPluginFileName,
                                         dir + "/../lib/stillpoint/" + kPluginFileName};
  for (const std::string& candidate : candidates) {
    if (Readable(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("the NBD plugin ", kPluginFileName, " is neither in ",
                                          dir, " nor in ", dir, "/../lib/stillpoint; set $",
                                          kPluginEnv, " to its path"));
}

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options) {
  std::string plugin = options.plugin_path;
  if (plugin.empty()) {
    SP_ASSIGN_OR_RETURN(plugin, PluginPath());
  }
  std::unique_ptr<Server> server(new Server());
  server->work_dir_ = options.work_dir;
  SP_RETURN_IF_ERROR(MakeDirs(options.work_dir, 0700));
  if (options.port == 0) {
    server->socket_path_ = AbsolutePath(options.socket_path);
    ::unlink(server->socket_path_.c_str());
    server->uri_ = absl::StrCat("nbd+unix:///", options.volume, "?socket=", server->socket_path_);
  } else {
    server->uri_ = absl::StrCat("nbd://127.0.0.1:", options.port, "/", options.volume);
  }
  std::string pid_file = options.work_dir + "/nbdkit.pid";
  SpawnOptions spawn;
  spawn.stdout_path = spawn.stderr_path = options.work_dir + "/nbdkit.log";
  spawn.new_session = true;  // Ctrl-C reaches only us; we stop the server in order
  SP_ASSIGN_OR_RETURN(
      server->pid_,
      Spawner::Get().Spawn(NbdkitArgv(options, plugin, pid_file, server->socket_path_), spawn));
  // nbdkit writes its pid file once it listens and the plugin has opened the volume.
  Deadline deadline = Deadline::In(options.start_timeout);
  while (true) {
    auto written = ReadFile(pid_file);
    if (written.ok() && !written->empty()) return server;
    if (!server->Running() || deadline.Expired()) {
      return absl::UnavailableError(absl::StrCat("nbdkit did not start serving volume '",
                                                 options.volume, "' of recovery point ",
                                                 options.point_id, ": ", server->Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Server::~Server() { (void)Stop(); }

bool Server::Running() {
  if (pid_ <= 0) return false;
  auto status = WaitChild(pid_, Deadline::In(Millis(0)));
  if (status.ok() && !status->has_value()) return true;
  pid_ = -1;
  return false;
}

std::string Server::Log() const {
  auto log = ReadFile(work_dir_ + "/nbdkit.log");
  return log.ok() ? *log : "";
}

Status Server::Stop() {
  Status result;
  if (pid_ > 0) {
    (void)SendSignal(pid_, SIGTERM);
    auto ended = WaitChild(pid_, Deadline::In(kStopTimeout));
    if (ended.ok() && !ended->has_value()) {
      (void)SendSignal(pid_, SIGKILL);
      ended = WaitChild(pid_, Deadline::In(kStopTimeout));
    }
    if (!ended.ok()) result = ended.status();
    pid_ = -1;
  }
  if (!socket_path_.empty()) ::unlink(socket_path_.c_str());
  if (!work_dir_.empty()) {
    Status removed = RemoveTree(work_dir_);
    if (result.ok()) result = removed;
    work_dir_.clear();
  }
  return result;
}

}  // namespace sp::nbd
