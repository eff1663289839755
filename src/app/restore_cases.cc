// Use cases over recovery points: new VMs, in-place restores, exports, imports and mounts.
#include <unistd.h>

#include <atomic>

#include "absl/strings/str_join.h"
#include "app/app.h"
#include "capture/point_record.h"
#include "catalog/recovery_points.h"

namespace sp::app {

StatusOr<restore::NewVmResult> App::CreateVmFromSnapshot(const NewVmFromSnapshotRequest& request) {
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  restore::NewVmRequest new_vm;
  new_vm.point_id = request.point_id;
  new_vm.name = request.name;
  new_vm.dir = request.dir.empty() ? paths_.home + "/images/" + request.name : request.dir;
  SP_ASSIGN_OR_RETURN(
      restore::NewVmResult result,
      restore::CreateVmFromPoint(*repo, *catalog_, new_vm, [this](const catalog::VmRecord& draft) {
        return DefineVm(draft);
      }));
  (void)catalog_->AddEvent(&result.vm, "vm.created-from-snapshot",
                           "created from recovery point " + result.point_id);
  return result;
}

StatusOr<VmRestoreResult> App::RestoreVm(const std::string& vm_name, const std::string& point_id,
                                         const std::vector<std::string>& volumes) {
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  VmRestoreResult result;
  SP_ASSIGN_OR_RETURN(result.vm, GetVm(vm_name));
  restore::InPlaceRequest request{point_id, volumes, paths_.run_root};
  auto restored = restore::RestoreInPlace(*repo, result.vm, request);
  if (!restored.ok()) {
    (void)catalog_->AddEvent(&result.vm, "vm.restore-failed",
                             std::string(restored.status().message()));
    return restored.status();
  }
  result.restored = *std::move(restored);
  std::vector<std::string> names;
  for (const auto& volume : result.restored.volumes) names.push_back(volume.name);
  (void)catalog_->AddEvent(
      &result.vm, "vm.restored",
      absl::StrCat("volumes ", absl::StrJoin(names, ", "), " restored from recovery point ",
                   result.restored.point_id));
  return result;
}

StatusOr<restore::ExportResult> App::ExportSnapshot(const restore::ExportRequest& request) {
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  return restore::ExportPoint(*repo, request);
}

StatusOr<restore::ImportResult> App::ImportSnapshot(const std::string& dir) {
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  SP_ASSIGN_OR_RETURN(restore::ImportResult result, restore::ImportPoint(*repo, dir));
  // The catalog's index of recovery points stays in step with the repository.
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog_->db()));
  SP_RETURN_IF_ERROR(index->Upsert(capture::RecordFromManifest(result.point)));
  return result;
}

StatusOr<MountedVolume> App::MountVolume(const MountRequest& request) {
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, repo->GetRecoveryPoint(request.point_id));
  MountedVolume mounted;
  mounted.point_id = manifest.id;
  mounted.volume = request.volume.empty() ? restore::BootVolumeName(manifest) : request.volume;
  // Several mounts in one process (the service) each get their own run files.
  static std::atomic<int> mounts{0};
  int mount = ++mounts;
  std::string tag = mount == 1 ? absl::StrCat("mount-", ::getpid())
                               : absl::StrCat("mount-", ::getpid(), "-", mount);
  restore::ServeOptions options;
  options.work_dir = paths_.run_root + "/" + tag;
  options.port = request.port;
  options.socket_path =
      request.socket.empty() ? paths_.run_root + "/" + tag + ".sock" : request.socket;
  SP_ASSIGN_OR_RETURN(mounted.server,
                      restore::VolumeServer::Start(*repo, manifest.id, mounted.volume, options));
  return mounted;
}

}  // namespace sp::app
