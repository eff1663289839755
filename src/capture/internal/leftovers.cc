#include "capture/internal/leftovers.h"

#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "capture/live_cut.h"
#include "platform/files.h"
#include "qga/freeze_record.h"

namespace sp::capture::internal {

// We hold the VM's capture lock, so none of what an earlier capture left is in use any more.
Status CleanUpInterrupted(qmp::Session* qmp, const catalog::VmRecord& vm,
                          const vm::CaptureFiles& files, catalog::Catalog* catalog,
                          std::vector<std::string>* notes) {
  std::vector<DeviceDrive> devices;
  if (vm.origin == "managed") {
    for (const catalog::VolumeRecord& record : vm.volumes) {
      devices.push_back({DrivePath(record), record.node_name});
    }
  }
  bool stop_server = false, resumed = false;
  std::vector<std::filesystem::path> stale;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(files.dir, ignored)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(files.prefix, 0) != 0) continue;
    stale.push_back(entry.path());
    if (absl::EndsWith(name, ".nbd")) stop_server = true;
    if (!entry.is_directory(ignored)) continue;
    for (DeviceDrive& device : ReadDevicesNote(entry.path())) devices.push_back(device);
    SP_ASSIGN_OR_RETURN(bool paused, vm::ResumeIfPausedByCapture(qmp, entry.path()));
    resumed = resumed || paused;
  }
  SP_ASSIGN_OR_RETURN(bool found, RemoveCaptureNodes(qmp, devices, stop_server, "cleanup"));
  for (const auto& path : stale) std::filesystem::remove_all(path, ignored);
  if (!found && stale.empty()) return absl::OkStatus();
  std::string what = absl::StrCat("removed what an interrupted capture left in QEMU and on disk",
                                  resumed ? "; resumed the VM it had paused" : "");
  notes->push_back(what);
  (void)catalog->AddEvent(&vm, "snapshot.cleanup", what);
  return absl::OkStatus();
}

// The VM's monitor thaws such a guest too; whoever comes first does it (ThawIfAbandoned takes a
// lock beside the record), the other waits until the record is gone.
Status ResolveAbandonedFreeze(const vm::RunPaths& paths, const catalog::VmRecord& vm,
                              catalog::Catalog* catalog, std::vector<std::string>* notes) {
  SP_RETURN_IF_ERROR(MakeDirs(paths.dir, 0700));
  Deadline deadline = Deadline::In(Millis(30'000));
  while (PathExists(paths.freeze_record)) {
    SP_ASSIGN_OR_RETURN(std::string thawed, qga::ThawIfAbandoned(paths.freeze_record, Label(vm)));
    if (!thawed.empty()) {
      notes->push_back(thawed);
      (void)catalog->AddEvent(&vm, "agent.thawed-abandoned", thawed);
      continue;
    }
    if (deadline.Expired()) {
      return absl::UnavailableError(
          absl::StrCat(Label(vm), ": an earlier capture's freeze is still being resolved (",
                       paths.freeze_record, "); try again in a minute"));
    }
    std::this_thread::sleep_for(Millis(100));
  }
  return absl::OkStatus();
}

Status RemoveStaleBitmaps(qmp::Session* qmp, const std::vector<VolumeWork>& volumes) {
  for (const VolumeWork& work : volumes) {
    if (work.record.format != "qcow2") continue;
    SP_ASSIGN_OR_RETURN(std::vector<std::string> own, OwnBitmaps(qmp, work.record.node_name));
    for (const std::string& stale : own) {
      if (stale == work.prev_bitmap) continue;
      SP_RETURN_IF_ERROR(qmp->Execute("block-dirty-bitmap-remove",
                                      {{"node", work.record.node_name}, {"name", stale}})
                             .status());
    }
  }
  return absl::OkStatus();
}

}  // namespace sp::capture::internal
