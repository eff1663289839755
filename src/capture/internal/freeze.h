// The point in time of a running VM, with the guest's filesystems frozen by its agent when the
// plan says so (application-consistent), else with its vCPUs paused (crash-consistent). The guest
// is thawed on every path out; a thaw guard watches while it is frozen, in case this process dies
// or hangs, and a freeze record names both for whoever finds them gone (qga/freeze_record.h).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "capture/live_cut.h"
#include "capture/policy.h"
#include "capture/thaw_guard.h"
#include "qga/qga_client.h"

namespace sp::capture::internal {

// Stands by while the guest is frozen. The real one is the thaw guard process (thaw_guard.h);
// unit tests put a fake here.
class FreezeWatch {
 public:
  // Unless released: the watch thaws the guest now.
  virtual ~FreezeWatch() = default;
  // The guest is thawed: the watch may stand down. An error when it is gone already.
  virtual Status Release() = 0;
  // The watching process, for the freeze record.
  virtual pid_t pid() const = 0;
};

using WatchStarter = std::function<StatusOr<std::unique_ptr<FreezeWatch>>(const ThawGuardOptions&)>;

// Starts the thaw guard process and waits until it watches.
StatusOr<std::unique_ptr<FreezeWatch>> StartThawGuard(const ThawGuardOptions& options);

struct FreezeSettings {
  Policy policy = Policy::kPreferApp;
  std::string vm_name;
  std::string agent_version;   // names the agent in the reason
  Millis agent_timeout{2000};  // for the thaw after a failed freeze
  // guard.deadline is the longest the guest may stay frozen: also the timeout of the freeze and
  // of the thaw. guard.freeze_record is written before the freeze.
  ThawGuardOptions guard;
};

struct CutWindow {
  Plan plan;  // after the freeze: what it froze, or why the point is crash-consistent after all
  double freeze_ms = 0, qmp_ms = 0, paused_ms = 0, thaw_ms = 0, frozen_window_ms = 0;
  std::vector<std::string> notes;
};

// Makes `cut`'s point in time: frozen through `agent` when `plan.freeze`, with the vCPUs paused
// otherwise or when the freeze fails (then crash-consistent, or FailedPrecondition under
// require-app). `agent` (null when the plan does not freeze) is closed before this returns, on
// every path, so that the thaw guard can reach the agent. Internal when the thaw failed (the thaw
// guard takes over); other errors are the cut's, the guard's or the freeze record's.
StatusOr<CutWindow> FreezeAndCut(const Plan& plan, std::unique_ptr<qga::Agent> agent,
                                 const FreezeSettings& settings, const WatchStarter& start_watch,
                                 LiveCut* cut);

}  // namespace sp::capture::internal
