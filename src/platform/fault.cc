#include "platform/fault.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace sp {
namespace {

struct Armed {
  std::string point;
  int signal = SIGKILL;
};

const Armed& ArmedFromEnvironment() {
  static const Armed armed = [] {
    Armed result;
    const char* value = std::getenv("STILLPOINT_FAULT_AT");
    if (value == nullptr) return result;
    std::string spec = value;
    size_t colon = spec.find(':');
    result.point = spec.substr(0, colon);
    if (colon != std::string::npos && spec.substr(colon + 1) == "stop") result.signal = SIGSTOP;
    return result;
  }();
  return armed;
}

}  // namespace

std::string_view ArmedFaultPoint() { return ArmedFromEnvironment().point; }

void FaultPoint(std::string_view point) {
  static std::atomic<bool> fired{false};
  const Armed& armed = ArmedFromEnvironment();
  if (armed.point.empty() || armed.point != point || fired.exchange(true)) return;
  std::fprintf(stderr, "stillpoint: fault point '%s' reached\n", armed.point.c_str());
  std::fflush(stderr);
  ::kill(::getpid(), armed.signal);
}

}  // namespace sp
