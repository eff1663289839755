#include "capture/internal/incremental.h"

#include <algorithm>

#include "capture/live_cut.h"
#include "catalog/recovery_points.h"

namespace sp::capture::internal {
namespace {

using nlohmann::json;

StatusOr<VolumeRead> PlanVolume(const VolumeWork& work, Power power, bool force_full,
                                const std::optional<ParentPoint>& parent, qmp::Session* qmp) {
  VolumeRead read;
  bool qcow2 = work.record.format == "qcow2";
  if (!qcow2) read.note = absl::StrCat(work.record.name, ": raw image, no dirty bitmap: full");
  if (power != Power::kRunning || !qcow2) return read;
  const ParentVolume* in_parent = parent ? parent->FindVolume(work.record.name) : nullptr;
  std::string bitmap = in_parent != nullptr ? in_parent->bitmap : "";
  if (force_full) {
    read.note = absl::StrCat(work.record.name, ": full requested");
  } else if (!parent) {
    read.note = absl::StrCat(work.record.name, ": first snapshot: full");
  } else if (bitmap.empty()) {
    read.note = absl::StrCat(work.record.name, ": previous point has no dirty bitmap: full");
  } else {
    SP_ASSIGN_OR_RETURN(std::string problem, CheckBitmap(qmp, work.record.node_name, bitmap));
    if (problem.empty()) {
      read.incremental = true;
      read.prev_bitmap = bitmap;
    } else {
      read.note = absl::StrCat(work.record.name, ": ", problem, ": full");
    }
  }
  return read;
}

}  // namespace

const ParentVolume* ParentPoint::FindVolume(const std::string& name) const {
  for (const ParentVolume& volume : volumes) {
    if (volume.name == name) return &volume;
  }
  return nullptr;
}

// The parent-volume lookup: the one place that reads what the parent's manifest says of its
// volumes beyond their data.
ParentPoint ParentOf(const repo::Manifest& parent) {
  ParentPoint typed{parent.id, {}};
  for (const repo::ManifestVolume& stored : parent.volumes) {
    const repo::PointVolume* recorded = parent.point_description.FindVolume(stored.name);
    typed.volumes.push_back({stored.name, recorded != nullptr ? recorded->bitmap : ""});
  }
  return typed;
}

StatusOr<std::optional<ParentPoint>> FindParent(catalog::Catalog* catalog, repo::Repository* repo,
                                                const std::string& vm_uuid) {
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog->db()));
  SP_ASSIGN_OR_RETURN(auto points, index->List(vm_uuid));
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    if (it->state != "complete") continue;
    auto manifest = repo->GetRecoveryPoint(it->id);
    if (manifest.ok()) return std::optional<ParentPoint>(ParentOf(*manifest));
    break;
  }
  return std::optional<ParentPoint>();
}

StatusOr<IncrementalPlan> MakeIncrementalPlan(const std::vector<VolumeWork>& volumes, Power power,
                                              bool force_full,
                                              const std::optional<ParentPoint>& parent,
                                              qmp::Session* qmp) {
  IncrementalPlan plan;
  for (const VolumeWork& work : volumes) {
    SP_ASSIGN_OR_RETURN(VolumeRead read, PlanVolume(work, power, force_full, parent, qmp));
    plan.volumes.push_back(std::move(read));
  }
  bool any_incremental = std::any_of(plan.volumes.begin(), plan.volumes.end(),
                                     [](const VolumeRead& read) { return read.incremental; });
  if (any_incremental) plan.parent_id = parent->id;
  return plan;
}

void ApplyPlan(const IncrementalPlan& plan, std::vector<VolumeWork>& volumes) {
  for (size_t i = 0; i < volumes.size(); ++i) {
    volumes[i].incremental = plan.volumes[i].incremental;
    volumes[i].prev_bitmap = plan.volumes[i].prev_bitmap;
    volumes[i].note = plan.volumes[i].note;
  }
}

}  // namespace sp::capture::internal
