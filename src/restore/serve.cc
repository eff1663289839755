#include "restore/serve.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "platform/files.h"
#include "platform/process.h"
#include "restore/materialize.h"

namespace sp::restore {
namespace {

constexpr Millis kStartTimeout{15'000};

bool PortAccepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

StatusOr<std::unique_ptr<VolumeServer>> VolumeServer::Start(repo::Repository& repo,
                                                            absl::string_view point_id,
                                                            absl::string_view volume,
                                                            const ServeOptions& options) {
  std::unique_ptr<VolumeServer> server(new VolumeServer());
  server->export_name_ = std::string(volume);
  server->work_dir_ = options.work_dir;
  server->socket_path_ = options.port == 0 ? AbsolutePath(options.socket_path) : "";
  SP_RETURN_IF_ERROR(MakeDirs(options.work_dir, 0700));
  std::string image = options.work_dir + "/volume.raw";
  SP_ASSIGN_OR_RETURN(MaterializeStats stats,
                      MaterializeVolume(repo, point_id, volume, image, ImageFormat::kRaw));
  server->size_ = stats.size;
  std::vector<std::string> argv = {"qemu-nbd",     "--read-only",
                                   "--format=raw", "--persistent",
                                   "--shared=0",   "--export-name=" + server->export_name_};
  if (options.port == 0) {
    ::unlink(server->socket_path_.c_str());
    argv.push_back("--socket=" + server->socket_path_);
    server->uri_ =
        absl::StrCat("nbd+unix:///", server->export_name_, "?socket=", server->socket_path_);
  } else {
    argv.insert(argv.end(), {"--bind=127.0.0.1", absl::StrCat("--port=", options.port)});
    server->uri_ = absl::StrCat("nbd://127.0.0.1:", options.port, "/", server->export_name_);
  }
  argv.push_back(image);
  SpawnOptions spawn;
  spawn.stdout_path = spawn.stderr_path = options.work_dir + "/qemu-nbd.log";
  spawn.new_session = true;  // Ctrl-C reaches us; we stop the server in order
  // Killed with us (even by SIGKILL), so no server outlives `snapshot mount`. SIGTERM lets
  // qemu-nbd remove its socket. Start runs on the CLI's main thread, which lives as long as we do.
  spawn.parent_death_signal = SIGTERM;
  SP_ASSIGN_OR_RETURN(server->pid_, Spawn(argv, spawn));
  Deadline deadline = Deadline::In(kStartTimeout);
  while (true) {
    bool up = options.port == 0 ? PathExists(server->socket_path_) : PortAccepts(options.port);
    if (up) return server;
    if (!server->Running() || deadline.Expired()) {
      auto log = ReadFile(spawn.stdout_path);
      return absl::UnavailableError(
          absl::StrCat("qemu-nbd did not start serving: ", log.ok() ? *log : "no log"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

VolumeServer::~VolumeServer() { (void)Stop(); }

bool VolumeServer::Running() {
  if (pid_ <= 0) return false;
  auto status = WaitChild(pid_, Deadline::In(Millis(0)));
  if (status.ok() && !status->has_value()) return true;
  pid_ = -1;
  return false;
}

Status VolumeServer::Stop() {
  Status result;
  if (pid_ > 0) {
    (void)SendSignal(pid_, SIGTERM);
    auto ended = WaitChild(pid_, Deadline::In(Millis(10'000)));
    if (ended.ok() && !ended->has_value()) {
      (void)SendSignal(pid_, SIGKILL);
      ended = WaitChild(pid_, Deadline::In(Millis(10'000)));
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

}  // namespace sp::restore
