#include "platform/fault.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "platform/clock.h"
#include "platform/environment.h"

namespace sp {
namespace {

enum class Action { kKill, kStop, kHang, kFail, kDelay };

struct Armed {
  std::string point;
  Action action = Action::kKill;
  int delay_ms = 0;
};

Armed ParseOne(absl::string_view spec) {
  Armed armed;
  size_t colon = spec.find(':');
  armed.point = std::string(spec.substr(0, colon));
  absl::string_view action = colon == absl::string_view::npos ? "kill" : spec.substr(colon + 1);
  if (action == "stop") armed.action = Action::kStop;
  if (action == "hang") armed.action = Action::kHang;
  if (action == "fail") armed.action = Action::kFail;
  if (action.substr(0, 6) == "delay=" && absl::SimpleAtoi(action.substr(6), &armed.delay_ms)) {
    armed.action = Action::kDelay;
  }
  return armed;
}

const std::vector<Armed>& ArmedPoints() {
  static const std::vector<Armed> armed = [] {
    std::vector<Armed> result;
    std::optional<std::string> value = GetEnv("STILLPOINT_FAULT_AT");
    if (!value) return result;
    for (absl::string_view spec : absl::StrSplit(*value, ',', absl::SkipEmpty())) {
      result.push_back(ParseOne(spec));
    }
    return result;
  }();
  return armed;
}

// Whether a once-only action at `point` may still act (and marks it used).
struct FiredPoints {
  absl::Mutex mutex;
  std::set<std::string, std::less<>> names ABSL_GUARDED_BY(mutex);
};

bool FirstTime(absl::string_view point) {
  static FiredPoints* const fired = new FiredPoints;
  absl::MutexLock lock(&fired->mutex);
  return fired->names.insert(std::string(point)).second;
}

const Armed* Find(absl::string_view point) {
  for (const Armed& armed : ArmedPoints()) {
    if (armed.point == point) return &armed;
  }
  return nullptr;
}

// Performs every action but kFail; returns true when `fail` is due here.
bool Act(absl::string_view point) {
  const Armed* armed = Find(point);
  if (armed == nullptr) return false;
  if (armed->action == Action::kDelay) {
    std::this_thread::sleep_for(Millis(armed->delay_ms));
    return false;
  }
  if (!FirstTime(point)) return false;
  std::fprintf(stderr, "stillpoint: fault point '%s' reached\n", armed->point.c_str());
  std::fflush(stderr);
  switch (armed->action) {
    case Action::kKill:
      ::kill(::getpid(), SIGKILL);
      break;
    case Action::kStop:
      ::kill(::getpid(), SIGSTOP);
      break;
    case Action::kHang:
      while (true) std::this_thread::sleep_for(Millis(1000));
    case Action::kFail:
      return true;
    case Action::kDelay:
      break;
  }
  return false;
}

}  // namespace

void FaultPoint(absl::string_view point) { (void)Act(point); }

Status FailurePoint(absl::string_view point) {
  if (!Act(point)) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("fault injected at ", point, " (STILLPOINT_FAULT_AT)"));
}

}  // namespace sp
