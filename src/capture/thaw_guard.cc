#include "capture/thaw_guard.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "absl/strings/numbers.h"
#include "catalog/catalog.h"
#include "platform/process.h"
#include "qga/freeze_record.h"
#include "qga/qga_client.h"

namespace sp::capture {
namespace {

constexpr Millis kThawRetryFor{120'000};

void Log(const std::string& message) {
  std::fprintf(stderr, "%s thaw-guard: %s\n", FormatUnixMicros(Clock::Real()->UnixMicros()).c_str(),
               message.c_str());
  std::fflush(stderr);
}

void RecordEvent(const std::string& catalog_path, int64_t vm_id, const std::string& kind,
                 const std::string& message) {
  auto catalog = catalog::Catalog::Open(catalog_path);
  if (!catalog.ok()) return;
  auto vm = (*catalog)->GetVm(vm_id);
  (void)(*catalog)->AddEvent(vm.ok() ? &*vm : nullptr, kind, message);
}

}  // namespace

StatusOr<std::unique_ptr<ThawGuard>> ThawGuard::Start(const ThawGuardOptions& options) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  auto channel = std::make_unique<UnixConnection>(UniqueFd(pair[0]));
  std::string program = options.program;
  if (program.empty()) {
    SP_ASSIGN_OR_RETURN(program, SelfExecutable());
  }
  std::vector<std::string> argv = {program,
                                   kThawGuardCommand,
                                   absl::StrCat(pair[1]),
                                   options.qga_socket,
                                   options.vm_name,
                                   absl::StrCat(options.vm_id),
                                   options.catalog_path,
                                   absl::StrCat(options.deadline.count()),
                                   absl::StrCat(::getpid()),
                                   options.freeze_record};
  auto guard = SpawnDetached(argv, options.log_path, pair[1]);
  ::close(pair[1]);
  if (!guard.ok()) return Annotate(guard.status(), "starting the thaw guard");
  LineReader reader(channel.get());
  auto ready = reader.ReadLine(Deadline::In(Millis(10'000)));
  if (!ready.ok() || *ready != "watching") {
    return absl::InternalError(
        absl::StrCat("the thaw guard did not start (see ", options.log_path, ")"));
  }
  return std::unique_ptr<ThawGuard>(new ThawGuard(std::move(channel), *guard));
}

Status ThawGuard::Release() {
  Status sent = channel_->WriteAll("thawed\n", Deadline::In(Millis(2000)));
  channel_->Close();
  if (!sent.ok()) {
    return absl::AbortedError("the thaw guard already acted: the freeze outlasted its deadline");
  }
  return absl::OkStatus();
}

[[noreturn]] void ThawGuardMain(int argc, char** argv) {
  int fd = -1, capture_pid = 0;
  int64_t vm_id = 0, deadline_ms = 0;
  if (argc != 10 || !absl::SimpleAtoi(argv[2], &fd) || !absl::SimpleAtoi(argv[5], &vm_id) ||
      !absl::SimpleAtoi(argv[7], &deadline_ms) || !absl::SimpleAtoi(argv[8], &capture_pid)) {
    std::fprintf(stderr,
                 "usage: %s %s FD QGA_SOCKET VM_NAME VM_ID CATALOG DEADLINE_MS PID RECORD\n",
                 argv[0], kThawGuardCommand);
    ::_exit(2);
  }
  std::string qga_socket = argv[3], vm_name = argv[4], catalog_path = argv[6];
  std::string freeze_record = argv[9];
  Deadline deadline = Deadline::In(Millis(deadline_ms));
  UnixConnection channel{UniqueFd(fd)};
  (void)channel.WriteAll("watching\n", Deadline::In(Millis(2000)));
  LineReader reader(&channel);
  auto message = reader.ReadLine(deadline);
  if (message.ok() && *message == "thawed") ::_exit(0);
  std::string why;
  if (message.status().code() == absl::StatusCode::kDeadlineExceeded) {
    why = absl::StrCat("the guest stayed frozen past the ", deadline_ms,
                       " ms deadline (capture process ", capture_pid, " hung; it was killed)");
    ::kill(capture_pid, SIGKILL);
    // Its agent connection closes when it is gone; the agent serves one client at a time.
    while (ProcessAlive(capture_pid)) std::this_thread::sleep_for(Millis(10));
  } else {
    why = "the capture process ended while the guest was frozen";
  }
  channel.Close();
  Log(why);
  std::string label = absl::StrCat("VM '", vm_name, "'");
  auto thawed = qga::ThawWithRetries(qga_socket, label, kThawRetryFor);
  if (thawed.ok()) ::unlink(freeze_record.c_str());
  std::string outcome =
      thawed.ok() ? *thawed : absl::StrCat("could NOT thaw: ", thawed.status().message());
  Log(outcome);
  RecordEvent(catalog_path, vm_id, thawed.ok() ? "agent.thawed-by-guard" : "agent.thaw-failed",
              absl::StrCat(why, "; thaw guard ", outcome));
  ::_exit(thawed.ok() ? 0 : 1);
}

}  // namespace sp::capture
