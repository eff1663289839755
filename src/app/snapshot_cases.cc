// Use cases that look at recovery points and what the catalog recorded.
#include "app/app.h"

namespace sp::app {

StatusOr<std::vector<catalog::EventRecord>> App::ListEvents(const catalog::VmRecord& vm,
                                                            int limit) {
  return catalog_->ListEvents(vm.id, limit);
}

std::optional<repo::VmUsage> App::SpaceUsage(const catalog::VmRecord& vm) {
  auto repo = Repo();
  if (!repo.ok()) return std::nullopt;
  auto usage = (*repo)->Usage(vm.uuid);
  return usage.ok() ? std::optional<repo::VmUsage>(*usage) : std::nullopt;
}

StatusOr<std::vector<catalog::RecoveryPointRecord>> App::ListSnapshots(const std::string& vm) {
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog_->db()));
  std::string key = vm;
  if (!key.empty()) {
    SP_ASSIGN_OR_RETURN(catalog::VmRecord record, catalog_->FindVm(key));
    key = record.uuid;
  }
  return index->List(key);
}

StatusOr<SnapshotDetails> App::GetSnapshot(const std::string& id) {
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  SnapshotDetails details;
  auto manifest = repo->GetRecoveryPoint(id);
  if (manifest.ok()) {
    details.manifest = *std::move(manifest);
    return details;
  }
  // A point that is not (yet) complete lives only in the catalog.
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog_->db()));
  SP_ASSIGN_OR_RETURN(auto points, index->List(""));
  for (const auto& point : points) {
    if (point.id.rfind(id, 0) != 0 || point.state == "complete") continue;
    details.unfinished = point;
    return details;
  }
  return manifest.status();
}

}  // namespace sp::app
