#include "capture/internal/preflight.h"

#include <algorithm>

#include "absl/strings/str_join.h"
#include "platform/files.h"
#include "vm/images.h"
#include "vm/machine.h"

namespace sp::capture::internal {
namespace {

using catalog::PowerState;
using catalog::VmRecord;
using catalog::VolumeRecord;
using nlohmann::json;

StatusOr<std::vector<VolumeRecord>> SelectVolumes(const VmRecord& vm,
                                                  const std::vector<std::string>& wanted) {
  if (wanted.empty()) return vm.volumes;
  std::vector<VolumeRecord> selected;
  for (const std::string& name : wanted) {
    const VolumeRecord* volume = vm.FindVolume(name);
    if (volume == nullptr) {
      std::vector<std::string> names;
      for (const auto& v : vm.volumes) names.push_back(v.name);
      return absl::NotFoundError(absl::StrCat(Label(vm), " has no volume '", name,
                                              "' (it has: ", absl::StrJoin(names, ", "), ")"));
    }
    if (std::none_of(selected.begin(), selected.end(),
                     [&](const VolumeRecord& v) { return v.name == name; })) {
      selected.push_back(*volume);
    }
  }
  const VolumeRecord* boot = vm.BootVolume();
  if (boot != nullptr && std::none_of(selected.begin(), selected.end(),
                                      [&](const VolumeRecord& v) { return v.boot; })) {
    return absl::InvalidArgumentError(absl::StrCat("the boot volume '", boot->name, "' of ",
                                                   Label(vm), " is always captured; add --volume ",
                                                   boot->name));
  }
  return selected;
}

Power PowerOf(const VmRecord& vm) {
  switch (vm.state) {
    case PowerState::kRunning:
      return Power::kRunning;
    case PowerState::kStoppedClean:
      return Power::kStoppedClean;
    case PowerState::kStoppedDirty:
      return vm.origin == "managed" ? Power::kStoppedDirty : Power::kStoppedUnknown;
    case PowerState::kStopped:
    case PowerState::kDefined:
      return Power::kStoppedUnknown;
  }
  return Power::kStoppedUnknown;
}

// One capture of a VM at a time, decided before QMP or the agent is touched: both serve one
// client, and a second capture would only wait on them and fail with a misleading error.
StatusOr<std::unique_ptr<FileLock>> LockVm(const VmRecord& vm, const std::string& lock_path) {
  auto lock = FileSystem::Posix()->TryLock(lock_path);
  if (absl::IsFailedPrecondition(lock.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("another capture of ", Label(vm),
                     " is running; wait for it to finish (`stillpoint snapshot list ", vm.name,
                     "` shows it in progress)"));
  }
  return lock;
}

// Why the agent did not answer, in words.
std::string Silence(const Status& answered, Millis timeout) {
  return answered.code() == absl::StatusCode::kDeadlineExceeded
             ? absl::StrCat("guest agent did not answer within ", timeout.count(), " ms")
             : absl::StrCat("guest agent unreachable: ", answered.message());
}

// The questions asked once the agent answered: its version and commands, whether someone else
// froze the guest, and (optionally) the guest's filesystems.
void AskAgent(AgentProbe& probe, Millis timeout) {
  auto info = probe.agent->Info(timeout);
  if (!info.ok()) {
    probe.finding.problem = absl::StrCat("guest-info failed: ", info.status().message());
    return;
  }
  probe.finding.version = info->version;
  // First: while frozen, the agent reports its freeze command as disabled.
  auto state = probe.agent->FreezeStatus(timeout);
  if (state.ok() && *state == qga::FreezeState::kFrozen) {
    probe.finding.problem =
        "the guest's filesystems were already frozen by someone else (left frozen; "
        "`stillpoint vm agent thaw` thaws them)";
    return;
  }
  if (!info->Supports("guest-fsfreeze-freeze")) {
    probe.finding.problem =
        absl::StrCat("guest agent ", info->version, " has guest-fsfreeze-freeze disabled");
    return;
  }
  auto filesystems = probe.agent->GetFsinfo(timeout);
  if (filesystems.ok()) probe.filesystems = *filesystems;
  probe.finding.can_freeze = true;
}

}  // namespace

StatusOr<Preflight> ResolveVm(const CaptureContext& context, const CaptureRequest& request) {
  Preflight preflight;
  SP_ASSIGN_OR_RETURN(preflight.vm, context.catalog->FindVm(request.vm));
  vm::CaptureFiles files = vm::CaptureFilesFor(preflight.vm, context.runtime->run_root());
  SP_RETURN_IF_ERROR(MakeDirs(files.dir, 0700));
  SP_ASSIGN_OR_RETURN(preflight.lock, LockVm(preflight.vm, files.lock));
  SP_ASSIGN_OR_RETURN(preflight.vm, context.runtime->Refresh(preflight.vm));
  SP_ASSIGN_OR_RETURN(std::vector<VolumeRecord> selected,
                      SelectVolumes(preflight.vm, request.volumes));
  if (request.policy) {
    preflight.policy = *request.policy;
  } else {
    SP_ASSIGN_OR_RETURN(preflight.policy, ParsePolicy(preflight.vm.policy));
  }
  preflight.power = PowerOf(preflight.vm);
  for (VolumeRecord& record : selected) {
    VolumeWork work;
    work.record = std::move(record);
    preflight.volumes.push_back(std::move(work));
  }
  return preflight;
}

Status InspectLive(qmp::Session* qmp, const VmRecord& vm, std::vector<VolumeWork>& volumes) {
  SP_ASSIGN_OR_RETURN(json blocks, qmp->Execute("query-block"));
  for (VolumeWork& work : volumes) {
    for (const json& block : blocks) {
      const json& inserted = block.value("inserted", json::object());
      // By its node, or (when an interrupted capture left the drive on its filter) by the path
      // stillpoint gives the disks of the VMs it launches.
      if (inserted.value("node-name", "") != work.record.node_name &&
          block.value("qdev", "") != DrivePath(work.record)) {
        continue;
      }
      const json& image = inserted.value("image", json::object());
      work.size = image.value("virtual-size", uint64_t{0});
      work.estimate = image.value("actual-size", work.size);
      work.drive_path = block.value("qdev", "");
    }
    if (work.size == 0 || work.drive_path.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          Label(vm), ": QEMU has no disk with format node '", work.record.node_name,
          "' for volume '", work.record.name, "' (was the VM reconfigured? re-attach it)"));
    }
  }
  return absl::OkStatus();
}

Status InspectStopped(std::vector<VolumeWork>& volumes) {
  for (VolumeWork& work : volumes) {
    SP_ASSIGN_OR_RETURN(vm::ImageInfo info, vm::InspectImage(work.record.path));
    work.size = info.virtual_size;
    SP_ASSIGN_OR_RETURN(uint64_t file_size, FileSize(work.record.path));
    work.estimate = std::min(file_size, info.virtual_size);
  }
  return absl::OkStatus();
}

AgentProbe ProbeAgent(const AgentConnector& connect, const VmRecord& vm, Policy policy,
                      Millis timeout) {
  AgentProbe probe;
  if (!vm.agent) {
    probe.finding.problem = "the VM has no guest agent channel";
    return probe;
  }
  if (policy == Policy::kCrashOnly) return probe;
  auto agent = connect(vm, timeout);
  Status answered = agent.ok() ? (*agent)->Sync(timeout) : agent.status();
  if (answered.ok()) answered = (*agent)->Ping(timeout);
  if (!answered.ok()) {
    probe.finding.problem = Silence(answered, timeout);
    return probe;
  }
  probe.agent = std::move(agent).value();
  probe.finding.answers = true;
  AskAgent(probe, timeout);
  return probe;
}

}  // namespace sp::capture::internal
