// Named fault points: places in long operations where a test can make the process die, stop,
// hang, slow down or fail, to prove that what the operation leaves behind is handled — by the
// operation itself or by the next one.
//
// STILLPOINT_FAULT_AT=POINT[:ACTION][,POINT[:ACTION]...] arms points for the process (read once).
// ACTION:
//   kill      (default) SIGKILL to this process — as if an operator or the OOM killer struck;
//   stop      SIGSTOP to this process, so a test can act meanwhile (kill the thaw guard, start a
//             competing command) and then SIGKILL or SIGCONT it;
//   hang      sleep forever: a process that hangs there;
//   fail      FailurePoint() returns an error there (FaultPoint() ignores it);
//   delay=MS  sleep MS milliseconds every time the point is passed.
// kill, stop, hang and fail act once per process. Unarmed points cost a lookup in a short list.
// The points of the capture are listed in capture/fault_points.h; restore adds
// restore.volume-written, restore.swapped-one and restore.written.
#pragma once

#include "absl/strings/string_view.h"
#include "platform/status.h"

namespace sp {

// Acts as armed when `point` is armed; returns otherwise (or after SIGCONT, or the delay).
void FaultPoint(absl::string_view point);

// As FaultPoint, and Internal("fault injected at POINT") when `point` is armed with `fail`.
Status FailurePoint(absl::string_view point);

}  // namespace sp
