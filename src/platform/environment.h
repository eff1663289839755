// The process environment, read in one place.
//
// getenv is not thread-safe against a concurrent setenv (glibc may move `environ` while it is
// read). stillpoint changes its own environment only before it starts any thread (the service's
// STILLPOINT_HOME in service_commands.cc, tests in their set-up) and in a forked child before
// exec (platform/process.cc), so reading it from any thread is safe under that rule; this is the
// one place that relies on it.
#pragma once

#include <optional>
#include <string>

namespace sp {

// The value of environment variable `name`; nullopt when it is unset or empty.
std::optional<std::string> GetEnv(const char* name);

// The directory for private temporary files: $TMPDIR, else /tmp.
std::string TempDirectory();

}  // namespace sp
