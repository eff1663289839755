// Where the repository's description of a recovery point meets the catalog's records: the
// catalog's row for a committed point, and the VM configuration a point records. Here because
// capture is the lowest module that knows both (the catalog does not know the repository, nor the
// repository the catalog); the capture, the import and `repo rebuild-catalog` all use it.
#pragma once

#include "catalog/records.h"
#include "catalog/recovery_points.h"
#include "repo/manifest.h"
#include "repo/point_description.h"

namespace sp::capture {

// The catalog's row for the committed point `manifest`: state "complete", its consistency
// ("" when not recorded) and reason, sizes and volume names.
catalog::RecoveryPointRecord RecordFromManifest(const repo::Manifest& manifest);

// What a point records of `vm`: the catalog's record as it is at capture.
repo::PointVm PointVmFromRecord(const catalog::VmRecord& vm);

}  // namespace sp::capture
