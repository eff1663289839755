// Time: a monotonic clock for deadlines and a wall clock for records, behind one interface
// so that tests can control time where it matters.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sp {

using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime Now() const = 0;
  // Wall-clock time in microseconds since the Unix epoch.
  virtual int64_t UnixMicros() const = 0;

  // The process-wide real clock. Never null, never destroyed.
  static Clock* Real();
};

// A point in time by which an operation must finish. Copyable, cheap.
class Deadline {
 public:
  static Deadline In(Millis timeout) {
    return Deadline(std::chrono::steady_clock::now() + timeout);
  }
  static Deadline Never() { return Deadline(SteadyTime::max()); }
  explicit Deadline(SteadyTime at) : at_(at) {}

  bool Expired() const { return std::chrono::steady_clock::now() >= at_; }
  // Milliseconds left (0 when expired, -1 for "never"), in the form poll(2) takes.
  int PollTimeoutMs() const;
  SteadyTime at() const { return at_; }

 private:
  SteadyTime at_;
};

// Milliseconds elapsed since `start` on the steady clock, as a double (sub-millisecond precision).
double MillisSince(SteadyTime start);

// ISO-8601 UTC text ("2026-11-22T10:01:02.345Z") of a time in microseconds since the epoch.
std::string FormatUnixMicros(int64_t micros);

}  // namespace sp
