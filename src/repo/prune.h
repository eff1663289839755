// Prune policy: which recovery points of a VM to keep under keep-last / hourly / daily / weekly /
// monthly / yearly rules. A pure function, so it is tested table-driven without a repository.
//
// Semantics (those of restic and borg): points are considered newest first. keep-last N keeps the
// N newest. keep-daily N keeps, for each of the N most recent days that have any point, the
// newest point of that day; hourly, weekly (ISO 8601 weeks), monthly and yearly likewise.
// Periods are in UTC. A point is kept when any rule keeps it; its reasons list every such rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "platform/status.h"

namespace sp::repo {

struct PrunePolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int keep_yearly = 0;

  // True when no rule keeps anything (pruning would remove every point).
  bool Empty() const;
};

struct PruneCandidate {
  std::string id;
  int64_t time_micros = 0;  // when the point in time was taken
};

struct PruneDecision {
  std::string id;
  int64_t time_micros = 0;
  bool keep = false;
  std::vector<std::string> reasons;  // "last 1", "daily 2026-11-22", ...
};

// One decision per candidate, newest first. InvalidArgument when `policy` is empty or negative.
StatusOr<std::vector<PruneDecision>> DecidePrune(std::vector<PruneCandidate> candidates,
                                                 const PrunePolicy& policy);

}  // namespace sp::repo
