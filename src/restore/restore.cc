#include "restore/restore.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "absl/strings/str_join.h"
#include "platform/check.h"
#include "platform/fault.h"
#include "platform/files.h"
#include "restore/export.h"
#include "vm/images.h"
#include "vm/machine.h"

namespace sp::restore {
namespace {

// The restored image replaces one whose mode its owner chose: keep that mode.
unsigned ModeToKeep(const std::string& image) {
  struct stat info {};
  if (::stat(image.c_str(), &info) != 0) return kOwnerFileMode;
  return (info.st_mode & 0777u) | kOwnerFileMode;
}

// Removes the files in `paths` (best effort; used on the way out of a failed restore).
void RemoveFiles(FileSystem* fs, const std::vector<std::string>& paths) {
  for (const std::string& path : paths) fs->DeleteFile(path).IgnoreError();
}

// `error`, saying where the old image of `path` is: it could not be renamed back.
Status KeptAt(const Status& error, const std::string& saved, const std::string& path) {
  return Annotate(error, absl::StrCat("the old image of ", path, " is kept at ", saved,
                                      "; move it back by hand"));
}

Status CheckStopped(const catalog::VmRecord& vm) {
  if (vm.state == catalog::PowerState::kRunning) {
    return absl::FailedPreconditionError(
        absl::StrCat("VM '", vm.name, "' is running; a restore in place needs it stopped ",
                     "(stillpoint vm stop ", vm.name, "), or make a new VM from the point ",
                     "(stillpoint vm create-from-snapshot)"));
  }
  for (const catalog::VolumeRecord& volume : vm.volumes) {
    // A running QEMU (stillpoint's or anyone's) holds a lock on its images.
    auto info = vm::InspectImage(volume.path);
    if (!info.ok() && info.status().code() == absl::StatusCode::kFailedPrecondition) {
      return Annotate(info.status(), absl::StrCat("VM '", vm.name, "' volume '", volume.name,
                                                  "': refusing to restore an image in use"));
    }
  }
  return absl::OkStatus();
}

// The (VM volume, point volume) pairs a restore in place covers.
StatusOr<std::vector<const catalog::VolumeRecord*>> SelectVolumes(
    const catalog::VmRecord& vm, const repo::Manifest& manifest,
    const std::vector<std::string>& wanted) {
  std::vector<std::string> names = wanted;
  if (names.empty()) {
    for (const repo::ManifestVolume& volume : manifest.volumes) {
      if (vm.FindVolume(volume.name) != nullptr) names.push_back(volume.name);
    }
  }
  if (names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("recovery point ", manifest.id, " holds no volume of VM '", vm.name, "'"));
  }
  std::vector<const catalog::VolumeRecord*> selected;
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (!seen.insert(name).second) continue;
    if (manifest.FindVolume(name) == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("recovery point ", manifest.id, " has no volume '", name, "'"));
    }
    const catalog::VolumeRecord* volume = vm.FindVolume(name);
    if (volume == nullptr) {
      return absl::NotFoundError(absl::StrCat("VM '", vm.name, "' has no volume '", name, "'"));
    }
    selected.push_back(volume);
  }
  return selected;
}

// Puts every new image in place of its old one; on a failure puts back the ones already swapped.
// An old image that cannot be put back stays at its `saved` path, which the error then names.
Status SwapIn(FileSystem* fs, const std::vector<const catalog::VolumeRecord*>& volumes,
              const std::vector<std::string>& fresh, const std::vector<std::string>& saved) {
  SP_CHECK_EQ(fresh.size(), volumes.size());
  SP_CHECK_EQ(saved.size(), volumes.size());
  size_t swapped = 0;
  Status status;
  for (; swapped < volumes.size(); ++swapped) {
    const std::string& path = volumes[swapped]->path;
    if (swapped == 1) {
      status = FailurePoint("restore.swapped-one");
      if (!status.ok()) break;
    }
    status = fs->Rename(path, saved[swapped]);
    if (!status.ok()) break;
    status = fs->Rename(fresh[swapped], path);
    if (!status.ok()) {
      if (!fs->Rename(saved[swapped], path).ok()) status = KeptAt(status, saved[swapped], path);
      break;
    }
  }
  if (status.ok()) return status;
  for (size_t i = 0; i < swapped; ++i) {
    const std::string& path = volumes[i]->path;
    fs->Rename(path, fresh[i]).IgnoreError();
    if (!fs->Rename(saved[i], path).ok()) status = KeptAt(status, saved[i], path);
  }
  return status;
}

// New MACs for the recorded NICs: none that a recorded NIC had or that `mac_in_use` reports.
StatusOr<std::vector<catalog::NicRecord>> NewNics(
    const std::vector<repo::PointNic>& recorded,
    const std::function<StatusOr<bool>(const std::string&)>& mac_in_use) {
  std::set<std::string> taken;
  for (const repo::PointNic& nic : recorded) taken.insert(nic.mac);
  std::vector<catalog::NicRecord> nics;
  for (const repo::PointNic& nic : recorded) {
    SP_ASSIGN_OR_RETURN(std::string mac,
                        vm::GenerateMac([&](const std::string& candidate) -> StatusOr<bool> {
                          if (taken.count(candidate) > 0) return true;
                          return mac_in_use(candidate);
                        }));
    taken.insert(mac);
    nics.push_back({mac, nic.network});
  }
  return nics;
}

}  // namespace

StatusOr<catalog::VmRecord> DraftFromPoint(
    const repo::Manifest& manifest, const std::string& name, const std::string& dir,
    ImageFormat format, const std::function<StatusOr<bool>(const std::string&)>& mac_in_use) {
  const repo::PointDescription& recorded = manifest.point_description;
  if (!recorded.vm) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recovery point ", manifest.id, " records no VM configuration; cannot make a VM of it"));
  }
  const repo::PointVm& config = *recorded.vm;
  catalog::VmRecord draft;
  draft.name = name;
  draft.uuid = vm::NewUuid();
  draft.vcpus = config.vcpus;
  draft.memory_mib = config.memory_mib;
  draft.firmware = config.firmware;
  draft.agent = config.guest_agent;
  draft.policy = config.consistency_policy;
  if (config.kernel) {
    draft.kernel = config.kernel->kernel;
    draft.initrd = config.kernel->initrd;
    draft.append = config.kernel->append;
  }
  SP_ASSIGN_OR_RETURN(draft.nics, NewNics(config.nics, mac_in_use));
  for (const repo::ManifestVolume& volume : manifest.volumes) {
    const repo::PointVolume* captured = recorded.FindVolume(volume.name);
    catalog::VolumeRecord record;
    record.name = volume.name;
    record.path = absl::StrCat(dir, "/", volume.name, ".", ImageFormatName(format));
    record.format = ImageFormatName(format);
    record.boot = captured != nullptr && captured->boot;
    record.serial = captured != nullptr ? captured->serial : "";
    draft.volumes.push_back(record);
  }
  if (draft.BootVolume() == nullptr && !draft.volumes.empty()) draft.volumes[0].boot = true;
  return draft;
}

std::string BootVolumeName(const repo::Manifest& manifest) {
  for (const repo::ManifestVolume& volume : manifest.volumes) {
    const repo::PointVolume* captured = manifest.point_description.FindVolume(volume.name);
    if (captured != nullptr && captured->boot) return volume.name;
  }
  return manifest.volumes.empty() ? "" : manifest.volumes.front().name;
}

StatusOr<NewVmResult> CreateVmFromPoint(repo::Repository& repo, catalog::Catalog& catalog,
                                        const NewVmRequest& request, const DefineFn& define) {
  if (catalog.FindVm(request.name).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("a VM called '", request.name, "' exists already; choose another --name"));
  }
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, repo.GetRecoveryPoint(request.point_id));
  std::string dir = AbsolutePath(request.dir);
  SP_ASSIGN_OR_RETURN(
      catalog::VmRecord draft,
      DraftFromPoint(manifest, request.name, dir, request.format,
                     [&](const std::string& mac) { return catalog.MacInUse(mac); }));
  bool made_dir = !PathExists(dir);
  SP_RETURN_IF_ERROR(MakeDirs(dir));
  NewVmResult result;
  result.point_id = manifest.id;
  std::vector<std::string> held;
  for (const repo::ManifestVolume& volume : manifest.volumes) held.push_back(volume.name);
  result.warnings =
      LeftOutVolumes(manifest.point_description, held, "recovery point " + manifest.id);
  std::vector<std::string> written;
  bool done = false;
  auto cleanup = absl::MakeCleanup([&] {
    if (done) return;
    RemoveFiles(request.fs, written);
    if (made_dir) request.fs->DeleteDir(dir).IgnoreError();
  });
  for (const catalog::VolumeRecord& volume : draft.volumes) {
    SP_ASSIGN_OR_RETURN(MaterializeStats stats,
                        MaterializeVolume(repo, manifest.id, volume.name, volume.path,
                                          request.format, nullptr, kOwnerFileMode, request.fs));
    written.push_back(volume.path);
    result.volumes.push_back({volume.name, volume.path, stats});
  }
  SP_ASSIGN_OR_RETURN(result.vm, define(draft));
  done = true;
  return result;
}

StatusOr<InPlaceResult> RestoreInPlace(repo::Repository& repo, const catalog::VmRecord& vm,
                                       const InPlaceRequest& request) {
  std::unique_ptr<FileLock> disks;
  if (!request.run_root.empty()) {
    SP_ASSIGN_OR_RETURN(disks, vm::LockVmDisks(vm, request.run_root));
  }
  SP_RETURN_IF_ERROR(CheckStopped(vm));
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, repo.GetRecoveryPoint(request.point_id));
  SP_ASSIGN_OR_RETURN(auto volumes, SelectVolumes(vm, manifest, request.volumes));
  InPlaceResult result;
  result.point_id = manifest.id;
  std::vector<std::string> fresh, saved;
  for (const catalog::VolumeRecord* volume : volumes) {
    fresh.push_back(volume->path + ".restoring");
    saved.push_back(volume->path + ".pre-restore");
    request.fs->DeleteFile(fresh.back()).IgnoreError();  // left by a restore that was killed
  }
  bool swapped = false;
  auto cleanup = absl::MakeCleanup([&] {
    if (!swapped) RemoveFiles(request.fs, fresh);
  });
  for (size_t i = 0; i < volumes.size(); ++i) {
    SP_ASSIGN_OR_RETURN(ImageFormat format, ParseImageFormat(volumes[i]->format));
    SP_ASSIGN_OR_RETURN(MaterializeStats stats,
                        MaterializeVolume(repo, manifest.id, volumes[i]->name, fresh[i], format,
                                          nullptr, ModeToKeep(volumes[i]->path), request.fs));
    SP_RETURN_IF_ERROR(FailurePoint("restore.volume-written"));
    result.volumes.push_back({volumes[i]->name, volumes[i]->path, stats});
  }
  FaultPoint("restore.written");
  // The VM may have been started while the images were written (by something that does not
  // take the disk lock: another tool).
  SP_RETURN_IF_ERROR(CheckStopped(vm));
  SP_RETURN_IF_ERROR(SwapIn(request.fs, volumes, fresh, saved));
  swapped = true;
  RemoveFiles(request.fs, saved);
  return result;
}

}  // namespace sp::restore
