// Incremental planning: which volumes of a running VM are read as only what changed since the
// parent point (through the dirty bitmap the parent left on the disk in QEMU), and why each other
// volume is read in full.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "capture/internal/volume_work.h"
#include "capture/policy.h"
#include "catalog/catalog.h"
#include "qmp/qmp_client.h"
#include "repo/repository.h"

namespace sp::capture::internal {

struct ParentVolume {
  std::string name;
  std::string bitmap;  // what the parent left in QEMU as the next incremental's base; "" = none
};

// The point an incremental refers to, with its volumes typed.
struct ParentPoint {
  std::string id;
  std::vector<ParentVolume> volumes;
  const ParentVolume* FindVolume(const std::string& name) const;
};

// `parent` with its volumes typed, their bitmaps as its manifest records them.
ParentPoint ParentOf(const repo::Manifest& parent);

// The newest complete point of the VM `vm_uuid`, or nullopt when there is none or its manifest
// cannot be read (the next capture is then a full one). Errors are the catalog's.
StatusOr<std::optional<ParentPoint>> FindParent(catalog::Catalog* catalog, repo::Repository* repo,
                                                const std::string& vm_uuid);

// How one volume is read.
struct VolumeRead {
  bool incremental = false;
  std::string prev_bitmap;  // the incremental's base, exported with the volume
  std::string note;         // why a full read, when an incremental was possible in principle
};

struct IncrementalPlan {
  std::string parent_id;            // the parent when some volume is incremental, else ""
  std::vector<VolumeRead> volumes;  // one per volume, in order
};

// The plan for `volumes`. Bitmaps are checked in QEMU through `qmp` (a bitmap that is gone,
// inconsistent or no longer recording means a full read). REQUIRES: `qmp` is not null when
// `power` is kRunning. Errors are QMP's.
StatusOr<IncrementalPlan> MakeIncrementalPlan(const std::vector<VolumeWork>& volumes, Power power,
                                              bool force_full,
                                              const std::optional<ParentPoint>& parent,
                                              qmp::Session* qmp);

// Writes the plan's decisions into `volumes`. REQUIRES: the plan was made for them.
void ApplyPlan(const IncrementalPlan& plan, std::vector<VolumeWork>& volumes);

}  // namespace sp::capture::internal
