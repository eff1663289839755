// The VM runtime: starts managed VMs, keeps their power state known, stops and kills them, and
// connects to the QMP and guest-agent sockets of managed and attached VMs.
//
// `Start` launches a detached monitor process that owns QEMU as its child. The monitor holds
// QEMU's second QMP socket, listens for SHUTDOWN, and when QEMU ends records in the catalog
// whether the stop was clean (the guest shut itself down) or dirty (host quit, signal, kill -9,
// crash) and why — even when no stillpoint command is running.
#pragma once

#include <memory>
#include <string>

#include "catalog/catalog.h"
#include "platform/clock.h"
#include "platform/status.h"
#include "qga/qga_client.h"
#include "qmp/qmp_client.h"
#include "vm/command_line.h"
#include "vm/machine.h"

namespace sp::vm {

struct RuntimeOptions {
  std::string catalog_path;  // the monitor opens its own connection to the catalog
  std::string run_root;      // directory under which each VM gets a short run directory
  QemuOptions qemu = QemuOptions::FromEnvironment();
  Millis start_timeout{30'000};  // until QEMU's QMP socket answers
  // The program that runs a VM's monitor: a binary whose main() hands `kMonitorCommand` to
  // MonitorMain(). Empty: this executable. (A fresh exec, not just a fork, so that the monitor
  // shares no SQLite or thread state with the command that started it.)
  std::string monitor_program;
};

inline constexpr char kMonitorCommand[] = "__monitor";

// Entry point of `<program> __monitor CATALOG RUN_ROOT VM_ID REPORT_FD`; never returns.
[[noreturn]] void MonitorMain(int argc, char** argv);

// When `scratch_dir` of a capture that ended holds kPausedMarker (see CaptureFilesFor) and QEMU
// is paused, resumes the vCPUs (the capture died between its `stop` and `cont`); removes the
// marker. Returns true when it resumed. REQUIRES: no capture of the VM runs (its lock is held).
StatusOr<bool> ResumeIfPausedByCapture(qmp::Session* qmp, const std::string& scratch_dir);

class Runtime {
 public:
  // `catalog` is not owned and must outlive the runtime.
  Runtime(catalog::Catalog* catalog, RuntimeOptions options)
      : catalog_(catalog), options_(std::move(options)) {}

  // Launches QEMU for a managed VM and returns once QEMU runs (state "running").
  // FailedPrecondition when the VM already runs, or an image is locked by another process;
  // the error carries QEMU's own message when QEMU refuses to start.
  Status Start(const catalog::VmRecord& vm);

  // Asks the guest to shut down (agent guest-shutdown, else/then ACPI powerdown) and waits up to
  // `timeout` for it. FailedPrecondition when the VM is not running; DeadlineExceeded when it is
  // still running afterwards (the message suggests `vm kill`).
  Status Stop(const catalog::VmRecord& vm, Millis timeout);

  // Forces QEMU off (SIGKILL) and waits until the monitor has recorded it.
  Status Kill(const catalog::VmRecord& vm);

  // Re-reads the VM and corrects a stale "running" (QEMU and its monitor gone without a record,
  // e.g. after a host reboot) to stopped-dirty. For attached VMs asks QEMU (query-status).
  StatusOr<catalog::VmRecord> Refresh(const catalog::VmRecord& vm);

  // QEMU's pid for a running managed VM.
  StatusOr<pid_t> QemuPid(const catalog::VmRecord& vm);

  // Connections to a running VM's command QMP socket and guest-agent socket.
  StatusOr<std::unique_ptr<qmp::Client>> ConnectQmp(const catalog::VmRecord& vm,
                                                    Millis timeout = Millis(5000));
  StatusOr<std::unique_ptr<qga::Client>> ConnectAgent(const catalog::VmRecord& vm,
                                                      Millis timeout = Millis(5000));

  const std::string& run_root() const { return options_.run_root; }

  StatusOr<RunPaths> PathsFor(const catalog::VmRecord& vm) const {
    return RunPathsFor(vm, options_.run_root);
  }

  // Waits until the catalog no longer says "running" for `vm` (the monitor recorded the stop).
  StatusOr<catalog::VmRecord> WaitUntilStopped(const catalog::VmRecord& vm, Deadline deadline);

 private:
  catalog::Catalog* catalog_;
  RuntimeOptions options_;
};

// Describes how QEMU ended, given the last SHUTDOWN event's data (null if none came) and its exit
// status: {clean?, reason in words}.
struct StopVerdict {
  bool clean = false;
  std::string reason;
};
StopVerdict JudgeStop(const nlohmann::json& shutdown_event, const std::string& exit_description);

}  // namespace sp::vm
