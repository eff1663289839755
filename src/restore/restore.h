// Recovery points back into VMs: a new VM on this host from a point, and a stopped VM's disks
// put back to a point in place.
//
// Both write complete images beside their destination before anything changes, so a failure
// leaves existing VMs and images exactly as they were.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/records.h"
#include "platform/status.h"
#include "repo/repository.h"
#include "restore/materialize.h"

namespace sp::restore {

struct NewVmRequest {
  std::string point_id;  // id or unique prefix
  std::string name;      // the new VM's name
  std::string dir;       // where its images go; created when missing; must not hold them yet
  ImageFormat format = ImageFormat::kQcow2;
  FileSystem* fs = FileSystem::Posix();  // renames and removals of the images (not owned)
};

struct VolumeResult {
  std::string name;
  std::string path;
  MaterializeStats stats;
};

struct NewVmResult {
  catalog::VmRecord vm;  // as defined
  std::string point_id;
  std::vector<VolumeResult> volumes;
  std::vector<std::string> warnings;  // volumes of the original VM the point does not hold
};

// Stores a VM definition (e.g. app::App::DefineVm) and returns it as stored.
using DefineFn = std::function<StatusOr<catalog::VmRecord>(catalog::VmRecord draft)>;

// The definition of a new VM made from `manifest` (the VM configuration its capture recorded):
// same vCPUs, memory, firmware, kernel boot, agent channel and policy; a new UUID; one NIC per
// recorded NIC, each with a new MAC for which `mac_in_use` is false and which no recorded NIC
// had; one volume per volume of the point, at `dir`/<volume>.<format>, with the recorded serial
// and boot flag. InvalidArgument when the manifest holds no VM configuration.
StatusOr<catalog::VmRecord> DraftFromPoint(
    const repo::Manifest& manifest, const std::string& name, const std::string& dir,
    ImageFormat format, const std::function<StatusOr<bool>(const std::string&)>& mac_in_use);

// The name of the point's boot volume as recorded at capture, else of its first volume ("" when
// it has none).
std::string BootVolumeName(const repo::Manifest& manifest);

// Materializes the point's volumes into `request.dir` and defines the new VM through `define`.
// AlreadyExists when a VM called `request.name` exists or an image is already there. On error
// the images written so far are removed and no VM is defined. The result warns about every
// volume of the original VM that the point lacks (the new VM has no such disk).
StatusOr<NewVmResult> CreateVmFromPoint(repo::Repository& repo, catalog::Catalog& catalog,
                                        const NewVmRequest& request, const DefineFn& define);

struct InPlaceRequest {
  std::string point_id;
  std::vector<std::string> volumes;  // empty: every volume of the point the VM has
  // When set, the VM's disk lock (vm::LockVmDisks) under this run root is held throughout, so
  // `vm start` cannot start the VM on images about to be swapped.
  std::string run_root;
  FileSystem* fs = FileSystem::Posix();  // renames and removals of the images (not owned)
};

struct InPlaceResult {
  std::string point_id;
  std::vector<VolumeResult> volumes;
};

// Puts the images of the stopped VM `vm` back to the point's contents. New images are written
// beside the old ones (<image>.restoring) and swapped in by rename only once all of them are
// complete; the old images are removed last. FailedPrecondition when the VM is running or an
// image is locked by a process; NotFound when the point or the VM lacks a selected volume. Any
// point whose volume names match may be restored (usually one of the VM's own). On error the
// VM's images are unchanged.
StatusOr<InPlaceResult> RestoreInPlace(repo::Repository& repo, const catalog::VmRecord& vm,
                                       const InPlaceRequest& request);

}  // namespace sp::restore
