// Which consistency a capture can promise, and why, before anything is frozen: the consistency
// table (guest agent × power state) combined with the VM's policy.
//
//   | agent                  | running     | stopped, clean shutdown | stopped, dirty |
//   | absent / not answering | crash       | application             | crash          |
//   | present, freeze works  | application | application             | crash          |
//
// Policies: require-app (refuse rather than take a crash-consistent point), prefer-app (the
// default: fall back to crash with the reason), crash-only (never freeze).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "platform/status.h"

namespace sp::capture {

enum class Policy { kRequireApp, kPreferApp, kCrashOnly };
enum class Consistency { kApplication, kCrash };

StatusOr<Policy> ParsePolicy(const std::string& text);
const char* PolicyName(Policy policy);
const char* ConsistencyName(Consistency consistency);  // "application" | "crash"

enum class Power { kRunning, kStoppedClean, kStoppedDirty, kStoppedUnknown };

// What preflight learned about the guest agent of a running VM.
struct AgentFinding {
  bool answers = false;     // sync + ping succeeded in time
  bool can_freeze = false;  // guest-fsfreeze-freeze enabled (and not already frozen)
  std::string version;      // e.g. "7.2.22"
  std::string problem;      // why not, in words ("guest agent did not answer within 2000 ms")
};

struct Plan {
  Consistency target = Consistency::kCrash;
  bool freeze = false;  // ask the agent to freeze for the cut
  std::string reason;   // why this consistency (final reason may be refined after the freeze)
};

// The plan for a capture, or FailedPrecondition under require-app when an application-consistent
// point cannot be had (the message says why and what to do).
// For a stopped VM `agent` is ignored; kStoppedUnknown means stillpoint did not see how it
// stopped: the caller decides later from the captured filesystems (see the truth check).
StatusOr<Plan> Decide(Policy policy, Power power, const AgentFinding& agent,
                      const std::string& vm_name);

// The plan once the agent was asked to freeze: `frozen` is how many filesystems it froze, or why
// it could not. A failed freeze means crash-consistent with that reason (the cut goes on without
// a freeze), or FailedPrecondition under require-app ("nothing was kept").
StatusOr<Plan> AfterFreeze(Policy policy, const Plan& plan, const StatusOr<int>& frozen,
                           const std::string& agent_version, const std::string& vm_name);

// What the captured data showed: how many ext4 filesystems were found, and which of them (in
// words) need journal recovery.
struct TruthCheck {
  size_t ext4_found = 0;
  std::vector<std::string> dirty_journals;
};

struct Verdict {
  Consistency consistency = Consistency::kCrash;
  std::string reason;
};

// The point's consistency: the plan, downgraded to crash-consistent when a journal in data the
// plan called application-consistent needs recovery; for a VM stopped outside stillpoint,
// decided by its journals. FailedPrecondition under require-app when the verdict is crash.
StatusOr<Verdict> Judge(Policy policy, Power power, const Plan& plan, const TruthCheck& truth,
                        const std::string& vm_name);

}  // namespace sp::capture
