#include "capture/internal/freeze.h"

#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "platform/fault.h"
#include "qga/freeze_record.h"

namespace sp::capture::internal {
namespace {

class ThawGuardWatch final : public FreezeWatch {
 public:
  explicit ThawGuardWatch(std::unique_ptr<ThawGuard> guard) : guard_(std::move(guard)) {}
  Status Release() override { return guard_->Release(); }
  pid_t pid() const override { return guard_->pid(); }

 private:
  std::unique_ptr<ThawGuard> guard_;
};

// What happened in the frozen window.
struct Frozen {
  StatusOr<int> frozen;  // filesystems frozen, or why not
  StatusOr<CutTimings> cut = absl::FailedPreconditionError("not cut: the freeze failed");
  StatusOr<int> thawed;
  double freeze_ms = 0, thaw_ms = 0, window_ms = 0;
};

// Freeze, cut, thaw. The thaw is a scope guard: it runs on every way out of the frozen scope,
// also after a failed freeze (which may have frozen some filesystems).
Frozen FreezeCutThaw(qga::Agent* agent, LiveCut* cut, const FreezeSettings& settings) {
  Frozen result;
  SteadyTime frozen_at = std::chrono::steady_clock::now();
  {
    auto thaw = absl::MakeCleanup([&] {
      SteadyTime thaw_at = std::chrono::steady_clock::now();
      result.thawed =
          agent->Thaw(result.frozen.ok() ? settings.guard.deadline : settings.agent_timeout);
      result.thaw_ms = MillisSince(thaw_at);
    });
    result.frozen = agent->Freeze(settings.guard.deadline);
    result.freeze_ms = MillisSince(frozen_at);
    if (result.frozen.ok()) {
      FaultPoint("cut.frozen");
      result.cut = cut->Cut(/*pause_vcpus=*/false);
    }
  }
  result.window_ms = MillisSince(frozen_at);
  return result;
}

// Without a freeze the vCPUs are paused around the cut, so that several disks are cut at one
// instant.
StatusOr<CutWindow> PausedCut(const Plan& plan, LiveCut* cut) {
  SP_ASSIGN_OR_RETURN(CutTimings timings, cut->Cut(/*pause_vcpus=*/true));
  CutWindow window;
  window.plan = plan;
  window.qmp_ms = timings.qmp_ms;
  window.paused_ms = timings.paused_ms;
  return window;
}

// The freeze failed: crash-consistent with the agent's reason (refused under require-app), cut
// with the vCPUs paused. The watch stays until the end, in case the thaw did not happen.
StatusOr<CutWindow> CutAfterFailedFreeze(const Plan& plan, const Frozen& frozen, FreezeWatch* watch,
                                         const FreezeSettings& settings, LiveCut* cut) {
  if (frozen.thawed.ok() && watch->Release().ok()) {
    ::unlink(settings.guard.freeze_record.c_str());
  }
  SP_ASSIGN_OR_RETURN(Plan crash, AfterFreeze(settings.policy, plan, frozen.frozen,
                                              settings.agent_version, settings.vm_name));
  SP_ASSIGN_OR_RETURN(CutWindow window, PausedCut(crash, cut));
  window.freeze_ms = frozen.freeze_ms;
  return window;
}

StatusOr<CutWindow> WindowOf(const Plan& plan, const Frozen& frozen,
                             const FreezeSettings& settings) {
  SP_RETURN_IF_ERROR(frozen.cut.status());
  CutWindow window;
  window.freeze_ms = frozen.freeze_ms;
  window.thaw_ms = frozen.thaw_ms;
  window.frozen_window_ms = frozen.window_ms;
  window.qmp_ms = frozen.cut->qmp_ms;
  window.paused_ms = frozen.cut->paused_ms;
  SP_ASSIGN_OR_RETURN(window.plan, AfterFreeze(settings.policy, plan, frozen.frozen,
                                               settings.agent_version, settings.vm_name));
  return window;
}

}  // namespace

StatusOr<std::unique_ptr<FreezeWatch>> StartThawGuard(const ThawGuardOptions& options) {
  SP_ASSIGN_OR_RETURN(std::unique_ptr<ThawGuard> guard, ThawGuard::Start(options));
  return std::unique_ptr<FreezeWatch>(new ThawGuardWatch(std::move(guard)));
}

StatusOr<CutWindow> FreezeAndCut(const Plan& plan, std::unique_ptr<qga::Agent> agent,
                                 const FreezeSettings& settings, const WatchStarter& start_watch,
                                 LiveCut* cut) {
  if (!plan.freeze) return PausedCut(plan, cut);
  SP_ASSIGN_OR_RETURN(std::unique_ptr<FreezeWatch> watch, start_watch(settings.guard));
  qga::FreezeRecord record{::getpid(), watch->pid(),
                           Clock::Real()->UnixMicros() / 1000 + settings.guard.deadline.count(),
                           settings.guard.qga_socket};
  SP_RETURN_IF_ERROR(qga::WriteFreezeRecord(settings.guard.freeze_record, record));
  Frozen frozen = FreezeCutThaw(agent.get(), cut, settings);
  agent.reset();  // the agent serves one client: leave it to the watch should it need to thaw
  if (!frozen.frozen.ok()) return CutAfterFailedFreeze(plan, frozen, watch.get(), settings, cut);
  if (!frozen.thawed.ok()) {
    return absl::InternalError(absl::StrCat("VM '", settings.vm_name, "': thaw failed (",
                                            frozen.thawed.status().message(),
                                            "); the thaw guard takes over"));
  }
  FaultPoint("cut.thawed");
  ::unlink(settings.guard.freeze_record.c_str());
  std::vector<std::string> notes;
  if (watch->Release().ok()) {
    ::unlink(settings.guard.log_path.c_str());  // it only stood by: nothing worth keeping
  } else {
    // We thawed the guest ourselves; the guard only stood by (it acts on its deadline by killing
    // this process first, so it cannot have acted here: it died).
    notes.push_back("the thaw guard ended before the thaw; the guest was thawed anyway");
  }
  SP_ASSIGN_OR_RETURN(CutWindow window, WindowOf(plan, frozen, settings));
  window.notes = std::move(notes);
  return window;
}

}  // namespace sp::capture::internal
