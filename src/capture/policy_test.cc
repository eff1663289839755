#include "capture/policy.h"

#include <gtest/gtest.h>

namespace sp::capture {
namespace {

TEST(PolicyTest, ConsistencyTableAndPolicies) {
  AgentFinding good{true, true, "7.2.22", ""};
  AgentFinding silent{false, false, "", "guest agent did not answer within 2000 ms"};
  struct Row {
    Policy policy;
    Power power;
    AgentFinding agent;
    bool refused;
    Consistency target;
    bool freeze;
  };
  const Row rows[] = {
      // The consistency table under prefer-app.
      {Policy::kPreferApp, Power::kRunning, good, false, Consistency::kApplication, true},
      {Policy::kPreferApp, Power::kRunning, silent, false, Consistency::kCrash, false},
      {Policy::kPreferApp, Power::kStoppedClean, silent, false, Consistency::kApplication, false},
      {Policy::kPreferApp, Power::kStoppedClean, good, false, Consistency::kApplication, false},
      {Policy::kPreferApp, Power::kStoppedDirty, good, false, Consistency::kCrash, false},
      {Policy::kPreferApp, Power::kStoppedDirty, silent, false, Consistency::kCrash, false},
      // require-app refuses whatever would be crash-consistent.
      {Policy::kRequireApp, Power::kRunning, good, false, Consistency::kApplication, true},
      {Policy::kRequireApp, Power::kRunning, silent, true, Consistency::kCrash, false},
      {Policy::kRequireApp, Power::kStoppedDirty, good, true, Consistency::kCrash, false},
      {Policy::kRequireApp, Power::kStoppedClean, silent, false, Consistency::kApplication, false},
      // crash-only never freezes.
      {Policy::kCrashOnly, Power::kRunning, good, false, Consistency::kCrash, false},
  };
  for (const Row& row : rows) {
    auto plan = Decide(row.policy, row.power, row.agent, "web01");
    SCOPED_TRACE(absl::StrCat(PolicyName(row.policy), " power=", static_cast<int>(row.power),
                              " agent=", row.agent.answers));
    if (row.refused) {
      EXPECT_EQ(plan.status().code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_NE(std::string(plan.status().message()).find("require-app"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->target, row.target);
    EXPECT_EQ(plan->freeze, row.freeze);
    EXPECT_FALSE(plan->reason.empty());
  }
}

TEST(PolicyTest, ReasonSaysWhyTheAgentCouldNotHelp) {
  AgentFinding silent{false, false, "", "guest agent did not answer within 2000 ms"};
  auto plan = Decide(Policy::kPreferApp, Power::kRunning, silent, "web01");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->reason, "guest agent did not answer within 2000 ms");
  auto refused = Decide(Policy::kRequireApp, Power::kRunning, silent, "web01");
  EXPECT_NE(std::string(refused.status().message()).find("did not answer"), std::string::npos);
  EXPECT_EQ(ParsePolicy("sometimes").status().code(), absl::StatusCode::kInvalidArgument);
}

// The whole verdict: the plan before the freeze, the freeze's outcome, and what the captured
// journals showed — the product's consistency rules end to end, one row a case.
TEST(PolicyTest, VerdictOverAgentPowerFreezeAndJournals) {
  AgentFinding good{true, true, "7.2.22", ""};
  AgentFinding silent{false, false, "", "guest agent did not answer within 2000 ms"};
  const StatusOr<int> froze = 2;
  const StatusOr<int> failed = absl::InternalError("fsfreeze hook has failed with status 1");
  const TruthCheck clean{2, {}};
  const TruthCheck dirty{2, {"volume 'data' (/dev/vdb)"}};
  const TruthCheck none{0, {}};
  enum Outcome { kApp, kCrash, kRefused };
  struct Row {
    Policy policy;
    Power power;
    AgentFinding agent;
    const StatusOr<int>* freeze;
    TruthCheck truth;
    Outcome outcome;
    const char* reason;  // part of the reason (or of the refusal)
  };
  const Row rows[] = {
      {Policy::kPreferApp, Power::kRunning, good, &froze, clean, kApp, "2 filesystem(s) frozen"},
      {Policy::kPreferApp, Power::kRunning, good, &froze, dirty, kCrash, "downgraded"},
      {Policy::kRequireApp, Power::kRunning, good, &froze, dirty, kRefused, "nothing was kept"},
      {Policy::kPreferApp, Power::kRunning, good, &failed, clean, kCrash, "could not freeze"},
      {Policy::kRequireApp, Power::kRunning, good, &failed, clean, kRefused, "could not freeze"},
      {Policy::kPreferApp, Power::kRunning, silent, &froze, dirty, kCrash, "did not answer"},
      {Policy::kRequireApp, Power::kRunning, silent, &froze, clean, kRefused, "did not answer"},
      {Policy::kCrashOnly, Power::kRunning, good, &froze, clean, kCrash, "crash-only"},
      {Policy::kPreferApp, Power::kStoppedClean, silent, &failed, clean, kApp, "shut down cleanly"},
      {Policy::kPreferApp, Power::kStoppedClean, good, &froze, dirty, kCrash, "downgraded"},
      {Policy::kPreferApp, Power::kStoppedDirty, good, &froze, clean, kCrash, "not shut down"},
      {Policy::kRequireApp, Power::kStoppedDirty, good, &froze, clean, kRefused, "not shut down"},
      {Policy::kPreferApp, Power::kStoppedUnknown, silent, &froze, clean, kApp, "2 ext4 journal"},
      {Policy::kPreferApp, Power::kStoppedUnknown, silent, &froze, dirty, kCrash, "downgraded"},
      {Policy::kPreferApp, Power::kStoppedUnknown, silent, &froze, none, kCrash, "no filesystem"},
      {Policy::kRequireApp, Power::kStoppedUnknown, silent, &froze, none, kRefused,
       "no filesystem"},
  };
  int line = 0;
  for (const Row& row : rows) {
    ++line;
    std::string reason;
    Outcome outcome = kRefused;
    auto plan = Decide(row.policy, row.power, row.agent, "web01");
    if (plan.ok()) plan = AfterFreeze(row.policy, *plan, *row.freeze, "7.2.22", "web01");
    if (plan.ok()) {
      auto verdict = Judge(row.policy, row.power, *plan, row.truth, "web01");
      if (verdict.ok()) {
        outcome = verdict->consistency == Consistency::kApplication ? kApp : kCrash;
        reason = verdict->reason;
      } else {
        reason = std::string(verdict.status().message());
      }
    } else {
      reason = std::string(plan.status().message());
    }
    EXPECT_EQ(outcome, row.outcome) << "row " << line << ": " << reason;
    EXPECT_NE(reason.find(row.reason), std::string::npos) << "row " << line << ": " << reason;
  }
}

}  // namespace
}  // namespace sp::capture
