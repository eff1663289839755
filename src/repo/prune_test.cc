#include "repo/prune.h"

#include <map>

#include "gtest/gtest.h"

namespace sp::repo {
namespace {

constexpr int64_t kHour = 3600LL * 1000000;
constexpr int64_t kDay = 24 * kHour;
// 2026-11-22T12:00:00Z, a Sunday.
constexpr int64_t kNow = 1795348800LL * 1000000;

struct Case {
  const char* name;
  std::vector<int64_t> ages;  // of the points, before kNow
  PrunePolicy policy;
  std::vector<int64_t> kept;  // ages of the points that must be kept
};

PrunePolicy Last(int n) {
  PrunePolicy p;
  p.keep_last = n;
  return p;
}
PrunePolicy Hourly(int n) {
  PrunePolicy p;
  p.keep_hourly = n;
  return p;
}
PrunePolicy Daily(int n) {
  PrunePolicy p;
  p.keep_daily = n;
  return p;
}
PrunePolicy Weekly(int n) {
  PrunePolicy p;
  p.keep_weekly = n;
  return p;
}
PrunePolicy Monthly(int n) {
  PrunePolicy p;
  p.keep_monthly = n;
  return p;
}
PrunePolicy Yearly(int n) {
  PrunePolicy p;
  p.keep_yearly = n;
  return p;
}
PrunePolicy LastAndDaily(int last, int daily) {
  PrunePolicy p;
  p.keep_last = last;
  p.keep_daily = daily;
  return p;
}

const std::vector<Case> kCases = {
    {"last keeps the newest", {0, kHour, 2 * kHour, 3 * kHour}, Last(2), {0, kHour}},
    {"last larger than the set keeps all", {0, kHour}, Last(5), {0, kHour}},
    {"hourly keeps the newest of each hour",
     {0, 10 * 60 * 1000000LL, kHour, kHour + 1, 3 * kHour},
     Hourly(3),
     {0, 10 * 60 * 1000000LL, kHour + 1}},
    {"daily skips days without points",
     {0, kHour, 2 * kDay, 2 * kDay + kHour, 5 * kDay},
     Daily(3),
     {0, 2 * kDay, 5 * kDay}},
    {"daily counts days, not points", {0, 1, 2, 3}, Daily(2), {0}},
    {"weekly uses ISO weeks (Sunday ends a week)",
     {0, kDay, 6 * kDay, 7 * kDay, 8 * kDay},
     Weekly(2),
     {0, 7 * kDay}},
    {"monthly", {0, 15 * kDay, 25 * kDay, 40 * kDay, 70 * kDay}, Monthly(2), {0, 25 * kDay}},
    {"yearly", {0, 200 * kDay, 400 * kDay, 800 * kDay}, Yearly(3), {0, 400 * kDay, 800 * kDay}},
    {"rules add up",
     {0, kHour, 2 * kHour, kDay, 2 * kDay},
     LastAndDaily(2, 3),
     {0, kHour, kDay, 2 * kDay}},
};

TEST(DecidePruneTest, KeepsExactlyWhatTheRulesSay) {
  for (const Case& test : kCases) {
    SCOPED_TRACE(test.name);
    std::vector<PruneCandidate> candidates;
    for (size_t i = 0; i < test.ages.size(); ++i) {
      candidates.push_back(PruneCandidate{absl::StrCat("p", i), kNow - test.ages[i]});
    }
    auto decisions = DecidePrune(candidates, test.policy);
    ASSERT_TRUE(decisions.ok()) << decisions.status();
    ASSERT_EQ(decisions->size(), test.ages.size());
    std::vector<int64_t> kept;
    for (const auto& decision : *decisions) {
      EXPECT_EQ(decision.keep, !decision.reasons.empty());
      if (decision.keep) kept.push_back(kNow - decision.time_micros);
    }
    EXPECT_EQ(kept, test.kept);
  }
}

TEST(DecidePruneTest, ReasonsNameTheRuleAndPeriod) {
  auto decisions = *DecidePrune({{"a", kNow}}, LastAndDaily(1, 1));
  ASSERT_EQ(decisions[0].reasons.size(), 2u);
  EXPECT_EQ(decisions[0].reasons[0], "last 1");
  EXPECT_EQ(decisions[0].reasons[1], "daily 2026-11-22");
}

TEST(DecidePruneTest, RefusesAnEmptyOrNegativePolicy) {
  EXPECT_TRUE(absl::IsInvalidArgument(DecidePrune({{"a", kNow}}, PrunePolicy{}).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(DecidePrune({{"a", kNow}}, Last(-1)).status()));
}

}  // namespace
}  // namespace sp::repo
