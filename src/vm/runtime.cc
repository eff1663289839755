#include "vm/runtime.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "platform/process.h"
#include "platform/unix_socket.h"
#include "qga/freeze_record.h"
#include "vm/images.h"

namespace sp::vm {
namespace {

using catalog::PowerState;
using catalog::VmRecord;

std::string Label(const VmRecord& vm) { return absl::StrCat("VM '", vm.name, "'"); }

StatusOr<pid_t> ReadPidFile(const std::string& path) {
  SP_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  int pid = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &pid) || pid <= 0) {
    return absl::DataLossError(absl::StrCat("pid file ", path, " holds no pid"));
  }
  return static_cast<pid_t>(pid);
}

void Log(const std::string& message) {
  std::fprintf(stderr, "%s %s\n", FormatUnixMicros(Clock::Real()->UnixMicros()).c_str(),
               message.c_str());
  std::fflush(stderr);
}

Status RequireManaged(const VmRecord& vm, absl::string_view action) {
  if (vm.origin == "managed") return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(Label(vm), " is attached (its QEMU was started by another tool); ", action,
                   " it with the tool that manages it (libvirt, Proxmox, ...)"));
}

// Connects to the monitor socket of a QEMU that is starting; gives up when QEMU exits.
StatusOr<std::unique_ptr<qmp::Client>> ConnectWhileStarting(const VmRecord& vm,
                                                            const RunPaths& paths, pid_t qemu,
                                                            Deadline deadline) {
  while (true) {
    SP_ASSIGN_OR_RETURN(std::optional<ExitStatus> ended, WaitChild(qemu, Deadline::In(Millis(0))));
    if (ended) {
      std::string log = ReadFile(paths.qemu_log).value_or("");
      while (!log.empty() && log.back() == '\n') log.pop_back();
      return absl::FailedPreconditionError(
          absl::StrCat(Label(vm), ": QEMU ", ended->Describe(), " while starting: ", log));
    }
    auto client = qmp::Client::Connect(paths.monitor_socket, Label(vm), Millis(2000));
    if (client.ok()) return client;
    if (deadline.Expired()) {
      ::kill(qemu, SIGKILL);
      return absl::DeadlineExceededError(absl::StrCat(
          Label(vm), ": QEMU did not open its QMP socket in time: ", client.status().message()));
    }
    std::this_thread::sleep_for(Millis(20));
  }
}

void Report(int report_fd, const std::string& message) {
  UnixConnection report{UniqueFd(report_fd)};
  (void)report.WriteAll(message + "\n", Deadline::In(Millis(2000)));
}

}  // namespace

StopVerdict JudgeStop(const nlohmann::json& shutdown_event, const std::string& exit_description) {
  if (shutdown_event.is_object()) {
    bool by_guest = shutdown_event.value("guest", false);
    std::string reason = shutdown_event.value("reason", "unknown");
    if (by_guest && reason == "guest-shutdown") {
      return {true, "the guest shut itself down (guest-shutdown)"};
    }
    if (by_guest) {
      return {false, absl::StrCat("the guest stopped abnormally (", reason, ")")};
    }
    return {false,
            absl::StrCat("VM was stopped by the host (", reason, "), not shut down by the guest")};
  }
  return {false, absl::StrCat("QEMU ", exit_description, " without a shutdown")};
}

namespace {

constexpr Millis kFreezeCheckEvery{250};

// The monitor outlives every capture of its VM: when a capture and its thaw guard both died while
// the guest was frozen, it is the one left to thaw it (see qga/freeze_record.h).
void ThawAbandonedFreeze(catalog::Catalog* catalog, const VmRecord& vm, const RunPaths& paths) {
  auto thawed = qga::ThawIfAbandoned(paths.freeze_record, absl::StrCat("VM '", vm.name, "'"));
  if (thawed.ok() && thawed->empty()) return;
  std::string message = thawed.ok() ? absl::StrCat(*thawed, " (by the VM's monitor)")
                                    : absl::StrCat("could NOT thaw the guest left frozen: ",
                                                   thawed.status().message());
  Log(message);
  (void)catalog->AddEvent(&vm, thawed.ok() ? "agent.thawed-abandoned" : "agent.thaw-failed",
                          message);
}

// A capture killed while it held the vCPUs paused (a crash-consistent cut takes a few ms) leaves
// its marker; once no capture of the VM runs any more (its lock is free), the monitor resumes.
void ResumeAbandonedPause(qmp::Client* qmp, catalog::Catalog* catalog, const VmRecord& vm,
                          const std::string& run_root) {
  CaptureFiles files = CaptureFilesFor(vm, run_root);
  std::vector<std::string> dirs;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(files.dir, ignored)) {
    if (entry.path().filename().string().rfind(files.prefix, 0) == 0 &&
        PathExists(entry.path().string() + "/" + kPausedMarker)) {
      dirs.push_back(entry.path().string());
    }
  }
  if (dirs.empty()) return;
  auto lock = FileSystem::Posix()->TryLock(files.lock);
  if (!lock.ok()) return;  // a capture runs: the pause is its own
  bool resumed = false;
  for (const std::string& dir : dirs) {
    auto done = ResumeIfPausedByCapture(qmp, dir);
    resumed = resumed || (done.ok() && *done);
  }
  if (!resumed) return;
  std::string message = "resumed the VM's vCPUs, left paused by a capture that ended";
  Log(message);
  (void)catalog->AddEvent(&vm, "vm.resumed", message);
}

[[noreturn]] void RunMonitor(const RuntimeOptions& options, int64_t vm_id, int report_fd) {
  auto opened = catalog::Catalog::Open(options.catalog_path);
  if (!opened.ok()) {
    Report(report_fd, std::string(opened.status().message()));
    ::_exit(1);
  }
  std::unique_ptr<catalog::Catalog> catalog = std::move(opened).value();
  auto fail = [&](const Status& status) {
    Log(std::string(status.message()));
    Report(report_fd, std::string(status.message()));
    ::_exit(1);
  };
  auto vm = catalog->GetVm(vm_id);
  if (!vm.ok()) fail(vm.status());
  auto paths = RunPathsFor(*vm, options.run_root);
  if (!paths.ok()) fail(paths.status());
  (void)WriteFileAtomic(paths->dir + "/monitor.pid", absl::StrCat(::getpid(), "\n"));
  for (const std::string* stale :
       {&paths->qmp_socket, &paths->monitor_socket, &paths->qga_socket, &paths->pid_file}) {
    ::unlink(stale->c_str());
  }
  SpawnOptions spawn;
  spawn.stdout_path = paths->qemu_log;
  spawn.stderr_path = paths->qemu_log;
  std::vector<std::string> argv = BuildQemuCommandLine(*vm, *paths, options.qemu);
  Log(absl::StrCat("starting: ", absl::StrJoin(argv, " ")));
  auto qemu = Spawn(argv, spawn);
  if (!qemu.ok()) fail(qemu.status());
  auto qmp = ConnectWhileStarting(*vm, *paths, *qemu, Deadline::In(options.start_timeout));
  if (!qmp.ok()) fail(qmp.status());
  (void)catalog->SetPowerState(vm_id, PowerState::kRunning, "started by stillpoint");
  (void)catalog->AddEvent(&*vm, "vm.started",
                          absl::StrCat("QEMU ", (*qmp)->qemu_version(), " started, pid ", *qemu));
  Report(report_fd, "OK");
  nlohmann::json shutdown;
  while (true) {
    auto event = (*qmp)->NextEvent(Deadline::In(kFreezeCheckEvery));
    if (absl::IsDeadlineExceeded(event.status())) {
      ThawAbandonedFreeze(catalog.get(), *vm, *paths);
      ResumeAbandonedPause(qmp->get(), catalog.get(), *vm, options.run_root);
      continue;
    }
    if (!event.ok()) break;  // QEMU closed the socket: it is ending
    Log(absl::StrCat("event ", event->name, " ", event->data.dump()));
    if (event->name == "SHUTDOWN") shutdown = event->data;
  }
  auto ended = WaitChild(*qemu, Deadline::In(Millis(60'000)));
  std::string exit_description = "ended";
  if (ended.ok() && ended->has_value()) exit_description = (*ended)->Describe();
  StopVerdict verdict = JudgeStop(shutdown, exit_description);
  Log(absl::StrCat("QEMU ", exit_description, "; ", verdict.reason));
  ::unlink(paths->pid_file.c_str());
  (void)catalog->SetPowerState(
      vm_id, verdict.clean ? PowerState::kStoppedClean : PowerState::kStoppedDirty, verdict.reason);
  (void)catalog->AddEvent(&*vm, "vm.stopped", verdict.reason);
  ::_exit(0);
}

}  // namespace

[[noreturn]] void MonitorMain(int argc, char** argv) {
  int64_t vm_id = 0;
  int report_fd = -1;
  if (argc != 6 || !absl::SimpleAtoi(argv[4], &vm_id) || !absl::SimpleAtoi(argv[5], &report_fd)) {
    std::fprintf(stderr, "usage: %s %s CATALOG RUN_ROOT VM_ID REPORT_FD\n", argv[0],
                 kMonitorCommand);
    ::_exit(2);
  }
  RuntimeOptions options;
  options.catalog_path = argv[2];
  options.run_root = argv[3];
  RunMonitor(options, vm_id, report_fd);
}

Status Runtime::Start(const VmRecord& vm) {
  SP_RETURN_IF_ERROR(RequireManaged(vm, "start"));
  SP_ASSIGN_OR_RETURN(std::unique_ptr<FileLock> disks, LockVmDisks(vm, options_.run_root));
  SP_ASSIGN_OR_RETURN(VmRecord current, Refresh(vm));
  if (current.state == PowerState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat(
        Label(vm), " is already running; `stillpoint vm stop ", vm.name, "` stops it"));
  }
  for (const catalog::VolumeRecord& volume : vm.volumes) {
    auto info = InspectImage(volume.path);
    if (!info.ok()) {
      return Annotate(info.status(), absl::StrCat(Label(vm), ", volume '", volume.name, "'"));
    }
  }
  SP_ASSIGN_OR_RETURN(RunPaths paths, PathsFor(vm));
  SP_RETURN_IF_ERROR(MakeDirs(paths.dir, 0700));
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoStatus(errno, "socketpair");
  }
  UnixConnection report{UniqueFd(pair[0])};
  std::string program = options_.monitor_program;
  if (program.empty()) {
    SP_ASSIGN_OR_RETURN(program, SelfExecutable());
  }
  std::vector<std::string> argv = {program,           kMonitorCommand,     options_.catalog_path,
                                   options_.run_root, absl::StrCat(vm.id), absl::StrCat(pair[1])};
  Status spawned = SpawnDetached(argv, paths.monitor_log, pair[1]).status();
  if (!spawned.ok()) {
    ::close(pair[1]);
    return spawned;
  }
  ::close(pair[1]);
  LineReader reader(&report);
  auto answer = reader.ReadLine(Deadline::In(options_.start_timeout + Millis(10'000)));
  if (!answer.ok()) {
    return absl::InternalError(absl::StrCat(Label(vm), ": the VM's monitor did not report (",
                                            answer.status().message(), "); see ",
                                            paths.monitor_log));
  }
  if (*answer != "OK") return absl::FailedPreconditionError(*answer);
  return absl::OkStatus();
}

StatusOr<VmRecord> Runtime::WaitUntilStopped(const VmRecord& vm, Deadline deadline) {
  while (true) {
    SP_ASSIGN_OR_RETURN(VmRecord current, Refresh(vm));
    if (current.state != PowerState::kRunning) return current;
    if (deadline.Expired()) {
      return absl::DeadlineExceededError(absl::StrCat(Label(vm), " is still running"));
    }
    std::this_thread::sleep_for(Millis(50));
  }
}

Status Runtime::Stop(const VmRecord& vm, Millis timeout) {
  SP_RETURN_IF_ERROR(RequireManaged(vm, "stop"));
  SP_ASSIGN_OR_RETURN(VmRecord current, Refresh(vm));
  if (current.state != PowerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat(Label(vm), " is not running (", catalog::PowerStateName(current.state), ")"));
  }
  Deadline deadline = Deadline::In(timeout);
  Status asked = absl::UnavailableError("the VM has no guest agent");
  if (vm.agent) {
    auto agent = ConnectAgent(vm, Millis(5000));
    asked = agent.ok() ? (*agent)->Sync(std::min(timeout, Millis(5000))) : agent.status();
    if (asked.ok()) asked = (*agent)->Shutdown("powerdown");
  }
  if (!asked.ok()) {
    (void)catalog_->AddEvent(&vm, "vm.stop",
                             absl::StrCat("guest agent could not be asked to shut down (",
                                          asked.message(), "); sending ACPI power button"));
    SP_ASSIGN_OR_RETURN(auto qmp, ConnectQmp(vm));
    SP_RETURN_IF_ERROR(qmp->Execute("system_powerdown").status());
  }
  auto stopped = WaitUntilStopped(vm, deadline);
  if (stopped.status().code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::DeadlineExceededError(
        absl::StrCat(Label(vm), " did not shut down within ", timeout.count() / 1000,
                     " s; `stillpoint vm kill ", vm.name, "` forces it off"));
  }
  return stopped.status();
}

Status Runtime::Kill(const VmRecord& vm) {
  SP_RETURN_IF_ERROR(RequireManaged(vm, "kill"));
  SP_ASSIGN_OR_RETURN(VmRecord current, Refresh(vm));
  if (current.state != PowerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat(Label(vm), " is not running (", catalog::PowerStateName(current.state), ")"));
  }
  SP_ASSIGN_OR_RETURN(pid_t pid, QemuPid(vm));
  (void)catalog_->AddEvent(&vm, "vm.kill", absl::StrCat("QEMU pid ", pid, " killed on request"));
  SP_RETURN_IF_ERROR(SendSignal(pid, SIGKILL));
  return WaitUntilStopped(vm, Deadline::In(Millis(30'000))).status();
}

StatusOr<pid_t> Runtime::QemuPid(const VmRecord& vm) {
  SP_ASSIGN_OR_RETURN(RunPaths paths, PathsFor(vm));
  auto pid = ReadPidFile(paths.pid_file);
  if (!pid.ok() || !ProcessAlive(*pid)) {
    return absl::FailedPreconditionError(absl::StrCat(Label(vm), " has no running QEMU"));
  }
  return *pid;
}

StatusOr<VmRecord> Runtime::Refresh(const VmRecord& vm) {
  SP_ASSIGN_OR_RETURN(VmRecord current, catalog_->GetVm(vm.id));
  if (current.origin != "managed") {
    auto qmp = ConnectQmp(current, Millis(2000));
    if (qmp.ok()) {
      auto status = (*qmp)->Execute("query-status");
      if (status.ok() && current.state != PowerState::kRunning) {
        SP_RETURN_IF_ERROR(catalog_->SetPowerState(current.id, PowerState::kRunning,
                                                   "QEMU answers on its QMP socket"));
        return catalog_->GetVm(vm.id);
      }
    } else if (qmp.status().code() == absl::StatusCode::kNotFound ||
               qmp.status().code() == absl::StatusCode::kUnavailable) {
      if (current.state == PowerState::kRunning) {
        SP_RETURN_IF_ERROR(catalog_->SetPowerState(
            current.id, PowerState::kStopped,
            "QEMU stopped while stillpoint did not watch it; whether the guest shut down cleanly "
            "is not known"));
        return catalog_->GetVm(vm.id);
      }
    }
    return current;
  }
  if (current.state != PowerState::kRunning) return current;
  SP_ASSIGN_OR_RETURN(RunPaths paths, PathsFor(current));
  auto qemu = ReadPidFile(paths.pid_file);
  auto monitor = ReadPidFile(paths.dir + "/monitor.pid");
  bool qemu_alive = qemu.ok() && ProcessAlive(*qemu);
  bool monitor_alive = monitor.ok() && ProcessAlive(*monitor);
  if (qemu_alive || monitor_alive) return current;
  // Re-read: the monitor may have recorded the stop between our two reads.
  SP_ASSIGN_OR_RETURN(current, catalog_->GetVm(vm.id));
  if (current.state != PowerState::kRunning) return current;
  std::string reason = "QEMU and its monitor ended without a record (host restarted?)";
  SP_RETURN_IF_ERROR(catalog_->SetPowerState(current.id, PowerState::kStoppedDirty, reason));
  (void)catalog_->AddEvent(&current, "vm.stopped", reason);
  return catalog_->GetVm(vm.id);
}

StatusOr<std::unique_ptr<qmp::Client>> Runtime::ConnectQmp(const VmRecord& vm, Millis timeout) {
  std::string path = vm.qmp_socket;
  if (vm.origin == "managed") {
    SP_ASSIGN_OR_RETURN(RunPaths paths, PathsFor(vm));
    path = paths.qmp_socket;
  }
  return qmp::Client::Connect(path, Label(vm), timeout);
}

StatusOr<std::unique_ptr<qga::Client>> Runtime::ConnectAgent(const VmRecord& vm, Millis timeout) {
  if (!vm.agent) {
    return absl::FailedPreconditionError(
        absl::StrCat(Label(vm), " is defined without a guest agent channel"));
  }
  std::string path = vm.qga_socket;
  if (vm.origin == "managed") {
    SP_ASSIGN_OR_RETURN(RunPaths paths, PathsFor(vm));
    path = paths.qga_socket;
  }
  return qga::Client::Connect(path, Label(vm), timeout);
}

StatusOr<bool> ResumeIfPausedByCapture(qmp::Session* qmp, const std::string& scratch_dir) {
  std::string marker = absl::StrCat(scratch_dir, "/", kPausedMarker);
  if (!PathExists(marker)) return false;
  SP_ASSIGN_OR_RETURN(nlohmann::json status, qmp->Execute("query-status"));
  bool resumed = false;
  if (status.is_object() && status.value("status", "") == "paused") {
    SP_RETURN_IF_ERROR(qmp->Execute("cont").status());
    resumed = true;
  }
  ::unlink(marker.c_str());
  return resumed;
}

}  // namespace sp::vm
