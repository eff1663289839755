// What the front ends show: the JSON of each thing stillpoint reports, shared by the CLI's
// `--json` and the REST API so that both give the same fields.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "catalog/records.h"
#include "catalog/recovery_points.h"
#include "repo/prune.h"
#include "repo/repository.h"
#include "restore/export.h"
#include "restore/restore.h"

namespace sp::app {

struct RepoInfo;
struct VmRestoreResult;

// A recovery point as the catalog lists it (`snapshot list --json`).
nlohmann::json PointRecordJson(const catalog::RecoveryPointRecord& record);
// Everything a point's manifest records: its identity, then every field of its description at
// the top level (`snapshot show --json`).
nlohmann::json PointJson(const repo::Manifest& manifest);
// A new VM made from a point; `started` when it was started too.
nlohmann::json NewVmJson(const restore::NewVmResult& result, bool started = false);
nlohmann::json RestoreJson(const VmRestoreResult& result);
nlohmann::json ExportJson(const std::string& dir, const restore::ExportResult& result);
nlohmann::json ImportJson(const restore::ImportResult& result);

// A VM in full: its record, the space its points use (when known) and recent events.
nlohmann::json VmDetailsJson(const catalog::VmRecord& vm, const std::optional<repo::VmUsage>& usage,
                             const std::vector<catalog::EventRecord>& events);
nlohmann::json RepoInfoJson(const RepoInfo& info);
nlohmann::json RepoStatsJson(const repo::RepositoryStats& stats);
nlohmann::json VerifyJson(const repo::VerifyReport& report);
nlohmann::json GcJson(const repo::GcReport& report);
nlohmann::json PruneJson(const std::vector<repo::PruneDecision>& decisions, bool dry_run);
nlohmann::json SpaceLimitJson(const catalog::VmRecord& vm, std::optional<int64_t> limit_bytes,
                              uint64_t used_bytes);

}  // namespace sp::app
