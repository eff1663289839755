// Named fault points: places in long operations where a test can make the process die or stop,
// to prove that what the operation leaves behind is recovered by the next one.
//
// STILLPOINT_FAULT_AT=POINT[:ACTION] arms one point for the process (read once). ACTION:
//   kill  (default) SIGKILL to this process — as if an operator or the OOM killer struck there;
//   stop  SIGSTOP to this process, so a test can kill other processes (the thaw guard) at that
//         moment and then SIGKILL or SIGCONT this one.
// The armed point acts once per process. Unarmed points cost one string comparison.
#pragma once

#include <string_view>

namespace sp {

// Acts as armed when `point` is the armed one; returns otherwise (or after SIGCONT).
void FaultPoint(std::string_view point);

// The point armed through the environment, or empty.
std::string_view ArmedFaultPoint();

}  // namespace sp
