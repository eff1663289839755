// What the front ends show: the JSON of each thing stillpoint reports, shared by the CLI's
// `--json` and the REST API so that both give the same fields.
#pragma once

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "catalog/records.h"
#include "repo/prune.h"
#include "repo/repository.h"

namespace sp::app {

struct RepoInfo;

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
