#include "repo/prune.h"

#include <time.h>

#include <algorithm>
#include <functional>

#include "absl/strings/str_format.h"

namespace sp::repo {
namespace {

struct tm UtcTime(int64_t micros) {
  time_t seconds = static_cast<time_t>(micros / 1000000);
  struct tm parts {};
  gmtime_r(&seconds, &parts);
  return parts;
}

std::string HourKey(const struct tm& t) {
  return absl::StrFormat("%04d-%02d-%02dT%02d", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                         t.tm_hour);
}
std::string DayKey(const struct tm& t) {
  return absl::StrFormat("%04d-%02d-%02d", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday);
}
std::string WeekKey(const struct tm& t) {
  char text[16];
  strftime(text, sizeof(text), "%G-W%V", &t);
  return text;
}
std::string MonthKey(const struct tm& t) {
  return absl::StrFormat("%04d-%02d", t.tm_year + 1900, t.tm_mon + 1);
}
std::string YearKey(const struct tm& t) { return absl::StrFormat("%04d", t.tm_year + 1900); }

struct BucketRule {
  const char* name;
  int count;
  std::function<std::string(const struct tm&)> key;
};

}  // namespace

bool PrunePolicy::Empty() const {
  return keep_last <= 0 && keep_hourly <= 0 && keep_daily <= 0 && keep_weekly <= 0 &&
         keep_monthly <= 0 && keep_yearly <= 0;
}

StatusOr<std::vector<PruneDecision>> DecidePrune(std::vector<PruneCandidate> candidates,
                                                 const PrunePolicy& policy) {
  if (policy.keep_last < 0 || policy.keep_hourly < 0 || policy.keep_daily < 0 ||
      policy.keep_weekly < 0 || policy.keep_monthly < 0 || policy.keep_yearly < 0) {
    return absl::InvalidArgumentError("keep counts must not be negative");
  }
  if (policy.Empty()) {
    return absl::InvalidArgumentError(
        "no keep rule given: pass at least one of --keep-last/--keep-hourly/--keep-daily/"
        "--keep-weekly/--keep-monthly/--keep-yearly (pruning would remove every point)");
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.time_micros != b.time_micros ? a.time_micros > b.time_micros : a.id > b.id;
  });
  std::vector<PruneDecision> decisions;
  decisions.reserve(candidates.size());
  for (const auto& candidate : candidates) {
    decisions.push_back(PruneDecision{candidate.id, candidate.time_micros, false, {}});
  }
  for (size_t i = 0; i < decisions.size() && i < static_cast<size_t>(policy.keep_last); ++i) {
    decisions[i].reasons.push_back(absl::StrCat("last ", i + 1));
  }
  const BucketRule rules[] = {{"hourly", policy.keep_hourly, HourKey},
                              {"daily", policy.keep_daily, DayKey},
                              {"weekly", policy.keep_weekly, WeekKey},
                              {"monthly", policy.keep_monthly, MonthKey},
                              {"yearly", policy.keep_yearly, YearKey}};
  for (const BucketRule& rule : rules) {
    int kept = 0;
    std::string last_bucket;
    for (auto& decision : decisions) {
      if (kept >= rule.count) break;
      std::string bucket = rule.key(UtcTime(decision.time_micros));
      if (bucket == last_bucket) continue;
      last_bucket = bucket;
      decision.reasons.push_back(absl::StrCat(rule.name, " ", bucket));
      ++kept;
    }
  }
  for (auto& decision : decisions) decision.keep = !decision.reasons.empty();
  return decisions;
}

}  // namespace sp::repo
