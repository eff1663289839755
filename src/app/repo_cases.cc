// Use cases over the repository: create, inspect, verify, collect garbage, prune, delete, keep
// the catalog's list of recovery points in step, and per-VM space limits.
#include <cstdlib>

#include "app/app.h"
#include "capture/point_record.h"
#include "catalog/recovery_points.h"
#include "platform/environment.h"

namespace sp::app {
namespace {

// `location`, whose empty path means `default_path`.
StatusOr<std::unique_ptr<repo::Repository>> OpenAt(const RepoLocation& location,
                                                   const std::string& default_path) {
  std::string path = location.path.empty() ? default_path : location.path;
  repo::OpenOptions options;
  options.key_file = location.key_file;
  if (options.key_file.empty()) options.key_file = GetEnv("STILLPOINT_KEY_FILE").value_or("");
  return repo::Repository::Open(path, options);
}

// The same, for the static use cases, which have no App to ask for the default.
StatusOr<std::unique_ptr<repo::Repository>> OpenAt(const RepoLocation& location) {
  SP_ASSIGN_OR_RETURN(std::string path, App::RepoPath(location));
  return OpenAt(location, path);
}

}  // namespace

StatusOr<std::string> App::RepoPath(const RepoLocation& location) {
  if (!location.path.empty()) return location.path;
  SP_ASSIGN_OR_RETURN(StatePaths paths, ResolveStatePaths());
  return paths.repo;
}

Status App::InitRepo(const RepoLocation& location, const repo::InitOptions& options) {
  SP_ASSIGN_OR_RETURN(std::string path, RepoPath(location));
  return repo::Repository::Init(path, options);
}

StatusOr<RepoInfo> App::GetRepoInfo(const RepoLocation& location) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location));
  return RepoInfo{repo->path(), repo->config()};
}

StatusOr<repo::RepositoryStats> App::GetRepoStats(const RepoLocation& location) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location));
  return repo->Stats();
}

StatusOr<repo::VerifyReport> App::VerifyRepo(const RepoLocation& location,
                                             const std::string& point_id) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location));
  return repo->Verify(point_id);
}

Status App::VerifyVerdict(const repo::VerifyReport& report) {
  if (report.ok()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("verify found ", report.problems.size(),
                                          " bad chunk reference(s) and ",
                                          report.damaged_points.size(),
                                          " damaged recovery point(s); the points named above "
                                          "cannot be restored in full"));
}

StatusOr<repo::GcReport> App::CollectGarbage(const RepoLocation& location) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location));
  return repo->CollectGarbage();
}

StatusOr<std::vector<repo::PruneDecision>> App::Prune(const RepoLocation& location,
                                                      const std::string& vm,
                                                      const repo::PrunePolicy& policy,
                                                      bool dry_run) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location, paths_.repo));
  SP_ASSIGN_OR_RETURN(auto decisions, repo->Prune(vm, policy, dry_run));
  if (dry_run) return decisions;
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog_->db()));
  for (const auto& decision : decisions) {
    if (!decision.keep) SP_RETURN_IF_ERROR(index->Remove(decision.id));
  }
  return decisions;
}

StatusOr<size_t> App::RebuildCatalog(const RepoLocation& location) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location, paths_.repo));
  SP_ASSIGN_OR_RETURN(auto manifests, repo->ListRecoveryPoints());
  std::vector<catalog::RecoveryPointRecord> records;
  records.reserve(manifests.size());
  for (const auto& manifest : manifests) records.push_back(capture::RecordFromManifest(manifest));
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog_->db()));
  SP_RETURN_IF_ERROR(index->ReplaceAll(records));
  return records.size();
}

StatusOr<repo::Manifest> App::DeleteSnapshot(const RepoLocation& location, const std::string& id) {
  SP_ASSIGN_OR_RETURN(auto repo, OpenAt(location, paths_.repo));
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, repo->GetRecoveryPoint(id));
  SP_RETURN_IF_ERROR(repo->DeleteRecoveryPoint(manifest.id));
  SP_ASSIGN_OR_RETURN(auto index, catalog::RecoveryPointIndex::Open(catalog_->db()));
  SP_RETURN_IF_ERROR(index->Remove(manifest.id));
  return manifest;
}

StatusOr<SpaceLimitResult> App::SetSpaceLimit(const RepoLocation& location, const std::string& vm,
                                              std::optional<int64_t> limit_bytes) {
  SpaceLimitResult result;
  SP_ASSIGN_OR_RETURN(result.vm, GetVm(vm));
  SP_RETURN_IF_ERROR(catalog_->SetSpaceLimit(result.vm.id, limit_bytes));
  result.limit_bytes = limit_bytes;
  if (auto repo = OpenAt(location, paths_.repo); repo.ok()) {
    if (auto usage = (*repo)->Usage(result.vm.uuid); usage.ok()) {
      result.used_bytes = usage->stored_bytes;
    }
  }
  return result;
}

}  // namespace sp::app
