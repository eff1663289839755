#include "platform/clock.h"

#include <ctime>

#include "absl/strings/str_format.h"

namespace sp {
namespace {

class RealClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  int64_t UnixMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

int Deadline::PollTimeoutMs() const {
  if (at_ == SteadyTime::max()) return -1;
  auto left = at_ - std::chrono::steady_clock::now();
  if (left <= SteadyTime::duration::zero()) return 0;
  // Round up so that a wait never ends just before the deadline and spins.
  auto ms = std::chrono::duration_cast<Millis>(left + Millis(1) - SteadyTime::duration(1)).count();
  return ms > 1'000'000'000 ? 1'000'000'000 : static_cast<int>(ms);
}

double MillisSince(SteadyTime start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string FormatUnixMicros(int64_t micros) {
  time_t seconds = static_cast<time_t>(micros / 1'000'000);
  struct tm tm_utc {};
  gmtime_r(&seconds, &tm_utc);
  return absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm_utc.tm_year + 1900,
                         tm_utc.tm_mon + 1, tm_utc.tm_mday, tm_utc.tm_hour, tm_utc.tm_min,
                         tm_utc.tm_sec, static_cast<int>((micros % 1'000'000) / 1000));
}

}  // namespace sp
