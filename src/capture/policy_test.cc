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

}  // namespace
}  // namespace sp::capture
