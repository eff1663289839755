#include "capture/policy.h"

#include "absl/strings/str_join.h"

namespace sp::capture {

StatusOr<Policy> ParsePolicy(const std::string& text) {
  if (text == "require-app") return Policy::kRequireApp;
  if (text == "prefer-app") return Policy::kPreferApp;
  if (text == "crash-only") return Policy::kCrashOnly;
  return absl::InvalidArgumentError(absl::StrCat(
      "consistency policy '", text, "' is not one of require-app, prefer-app, crash-only"));
}

const char* PolicyName(Policy policy) {
  switch (policy) {
    case Policy::kRequireApp:
      return "require-app";
    case Policy::kPreferApp:
      return "prefer-app";
    case Policy::kCrashOnly:
      return "crash-only";
  }
  return "?";
}

const char* ConsistencyName(Consistency consistency) {
  return consistency == Consistency::kApplication ? "application" : "crash";
}

StatusOr<Plan> Decide(Policy policy, Power power, const AgentFinding& agent,
                      const std::string& vm_name) {
  auto refuse = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat(
        "VM '", vm_name, "': an application-consistent snapshot is required (policy require-app) ",
        "but ", why, "; nothing was captured. Use --consistency prefer-app to accept a ",
        "crash-consistent point"));
  };
  switch (power) {
    case Power::kStoppedClean:
      return Plan{Consistency::kApplication, false, "VM was shut down cleanly by the guest"};
    case Power::kStoppedUnknown:
      // Settled by the captured filesystems' journals; provisional until then.
      return Plan{Consistency::kApplication, false,
                  "VM was stopped outside stillpoint; judged by its filesystems' journals"};
    case Power::kStoppedDirty:
      if (policy == Policy::kRequireApp) {
        return refuse("the VM was not shut down cleanly by its guest");
      }
      return Plan{Consistency::kCrash, false, "VM was not shut down cleanly by its guest"};
    case Power::kRunning:
      break;
  }
  if (policy == Policy::kCrashOnly) {
    return Plan{Consistency::kCrash, false, "policy crash-only: the guest was not frozen"};
  }
  if (!agent.answers || !agent.can_freeze) {
    std::string why = agent.problem.empty() ? "the guest agent cannot freeze" : agent.problem;
    if (policy == Policy::kRequireApp) return refuse(why);
    return Plan{Consistency::kCrash, false, why};
  }
  return Plan{Consistency::kApplication, true,
              absl::StrCat("filesystems to be frozen by guest agent ", agent.version)};
}

StatusOr<Plan> AfterFreeze(Policy policy, const Plan& plan, const StatusOr<int>& frozen,
                           const std::string& agent_version, const std::string& vm_name) {
  if (!plan.freeze) return plan;
  if (!frozen.ok()) {
    if (policy == Policy::kRequireApp) {
      return absl::FailedPreconditionError(absl::StrCat(
          "VM '", vm_name, "': the guest agent could not freeze (", frozen.status().message(),
          ") and policy require-app forbids a crash-consistent point; nothing was kept"));
    }
    return Plan{Consistency::kCrash, false,
                absl::StrCat("guest agent could not freeze: ", frozen.status().message())};
  }
  return Plan{plan.target, true,
              absl::StrCat(*frozen, " filesystem(s) frozen by guest agent ", agent_version)};
}

StatusOr<Verdict> Judge(Policy policy, Power power, const Plan& plan, const TruthCheck& truth,
                        const std::string& vm_name) {
  Verdict verdict{plan.target, plan.reason};
  if (plan.target == Consistency::kApplication && !truth.dirty_journals.empty()) {
    verdict = {Consistency::kCrash,
               absl::StrCat(plan.reason, ", but ext4 needs journal recovery on ",
                            absl::StrJoin(truth.dirty_journals, ", "),
                            ": downgraded to crash-consistent")};
  } else if (power == Power::kStoppedUnknown) {
    verdict = truth.ext4_found == 0
                  ? Verdict{Consistency::kCrash,
                            "VM was stopped outside stillpoint and no filesystem shows how"}
                  : Verdict{Consistency::kApplication,
                            absl::StrCat("VM was stopped outside stillpoint; all ",
                                         truth.ext4_found, " ext4 journal(s) are clean")};
  }
  if (verdict.consistency == Consistency::kCrash && policy == Policy::kRequireApp) {
    return absl::FailedPreconditionError(absl::StrCat(
        "VM '", vm_name, "': policy require-app, but the point would be crash-consistent (",
        verdict.reason, "); nothing was kept"));
  }
  return verdict;
}

}  // namespace sp::capture
