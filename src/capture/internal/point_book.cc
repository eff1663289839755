#include "capture/internal/point_book.h"

#include "capture/point_record.h"
#include "platform/fault.h"

namespace sp::capture::internal {

repo::RecoveryPointRequest PointRequest(const catalog::VmRecord& vm, const CaptureRequest& request,
                                        const std::vector<VolumeWork>& volumes,
                                        const std::string& parent_id) {
  repo::RecoveryPointRequest point;
  point.vm = {vm.uuid, vm.name};
  point.name = request.name.empty() ? vm.name : request.name;
  point.description = request.description;
  point.parent_id = parent_id;
  for (const VolumeWork& work : volumes) point.estimated_bytes += work.estimate;
  point.space_limit_bytes =
      vm.space_limit_bytes ? std::optional<uint64_t>(static_cast<uint64_t>(*vm.space_limit_bytes))
                           : std::nullopt;
  return point;
}

Status PointBook::Begin(const repo::RecoveryPointRequest& request,
                        const std::vector<VolumeWork>& volumes) {
  SP_ASSIGN_OR_RETURN(index_, catalog::RecoveryPointIndex::Open(catalog_->db()));
  SP_ASSIGN_OR_RETURN(writer_, repo_->BeginRecoveryPoint(request));
  SP_RETURN_IF_ERROR(MarkAbandoned());
  catalog::RecoveryPointRecord record;
  record.id = writer_->id();
  record.vm_uuid = vm_.uuid;
  record.vm_name = vm_.name;
  record.name = request.name;
  record.description = request.description;
  record.parent_id = request.parent_id;
  record.state = "in-progress";
  record.created_us = catalog_->clock()->UnixMicros();
  for (const VolumeWork& work : volumes) {
    record.volumes.push_back(work.record.name);
    record.logical_bytes += static_cast<int64_t>(work.size);
  }
  return index_->Upsert(record);
}

// We hold the VM's capture lock now, so any other in-progress point of this VM belongs to a
// capture process that ended without finishing (killed, or its host restarted).
Status PointBook::MarkAbandoned() {
  SP_ASSIGN_OR_RETURN(auto points, index_->List(vm_.uuid));
  for (catalog::RecoveryPointRecord& point : points) {
    if (point.state != "in-progress" || point.id == writer_->id()) continue;
    point.state = "failed";
    point.reason = "the capture process ended before finishing (killed?)";
    SP_RETURN_IF_ERROR(index_->Upsert(point));
  }
  return absl::OkStatus();
}

StatusOr<repo::VolumeWriter*> PointBook::AddVolume(const std::string& name, uint64_t size) {
  data_moved_ = true;
  return writer_->AddVolume(name, size);
}

StatusOr<std::string> PointBook::Commit(const repo::PointDescription& description,
                                        const Verdict& verdict) {
  FaultPoint("commit.before");
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, writer_->Commit(description));
  const std::string& id = manifest.id;
  FaultPoint("commit.after");
  (void)index_->Upsert(RecordFromManifest(manifest));
  (void)catalog_->AddEvent(
      &vm_, "snapshot.created",
      absl::StrCat("recovery point ", id, ": ", ConsistencyName(verdict.consistency),
                   "-consistent (", verdict.reason, ")"));
  return manifest.id;
}

bool PointBook::Abort() {
  if (!writer_) return false;
  writer_->Abort();
  return true;
}

void PointBook::RecordFailure(const Status& reported) {
  if (writer_ && !data_moved_) {
    // Refused before any data moved (e.g. require-app and the freeze failed): an event, not a
    // recovery point.
    (void)index_->Remove(writer_->id());
  } else if (writer_) {
    auto record = index_->Get(writer_->id());
    if (record.ok()) {
      record->state = "failed";
      record->reason = std::string(reported.message());
      (void)index_->Upsert(*record);
    }
  }
  (void)catalog_->AddEvent(&vm_, "snapshot.failed", std::string(reported.message()));
}

}  // namespace sp::capture::internal
