// The thaw guard: the guest must never be left frozen, even when the capture process dies or
// hangs. Before freezing, the capture starts a small detached process that outlives it. The
// capture tells it "thawed" once the guest is thawed and it exits. If instead the capture's end
// of their channel closes (the capture died) or the deadline passes (the capture hangs; it is
// killed first, because the guest agent serves one client at a time), the guard connects to the
// agent itself and thaws, with retries, and records an event saying so.
#pragma once

#include <memory>
#include <string>

#include "platform/clock.h"
#include "platform/status.h"
#include "platform/unix_socket.h"

namespace sp::capture {

struct ThawGuardOptions {
  std::string program;     // binary whose main() hands kThawGuardCommand to ThawGuardMain;
                           // empty = this executable
  std::string qga_socket;  // the VM's guest-agent socket
  std::string vm_name;
  int64_t vm_id = 0;
  std::string catalog_path;   // where the guard records its event
  std::string log_path;       // the guard's own log
  std::string freeze_record;  // removed by the guard once it thawed (see qga/freeze_record.h)
  Millis deadline{5000};      // longest the guest may stay frozen
};

inline constexpr char kThawGuardCommand[] = "__thaw-guard";

class ThawGuard {
 public:
  // Starts the guard and waits until it watches. The deadline runs from now.
  static StatusOr<std::unique_ptr<ThawGuard>> Start(const ThawGuardOptions& options);
  // Unless Release()d: closes the channel, so the guard thaws the guest at once.
  ~ThawGuard() = default;

  // The guest is thawed: the guard may stand down. Returns an error when the guard is gone (it
  // was killed; when its deadline passes it kills the capture before it thaws, so a capture
  // that gets here alive knows the guard did not act).
  Status Release();

  pid_t pid() const { return pid_; }

 private:
  ThawGuard(std::unique_ptr<UnixConnection> channel, pid_t pid)
      : channel_(std::move(channel)), pid_(pid) {}
  std::unique_ptr<UnixConnection> channel_;
  pid_t pid_;
};

// Entry point of `<program> __thaw-guard FD QGA_SOCKET VM_NAME VM_ID CATALOG DEADLINE_MS
// CAPTURE_PID FREEZE_RECORD`; never returns.
[[noreturn]] void ThawGuardMain(int argc, char** argv);

}  // namespace sp::capture
