#include "platform/environment.h"

#include <cstdlib>

namespace sp {

std::optional<std::string> GetEnv(const char* name) {
  // See the header: the environment is only written before threads start.
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

std::string TempDirectory() { return GetEnv("TMPDIR").value_or("/tmp"); }

}  // namespace sp
