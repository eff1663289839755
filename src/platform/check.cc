#include "platform/check.h"

#include <cstdio>
#include <cstdlib>

namespace sp::internal {

void CheckFailed(const char* file, int line, const char* condition, const std::string& values) {
  std::fprintf(stderr, "%s:%d: check failed: %s%s%s\n", file, line, condition,
               values.empty() ? "" : " ", values.c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace sp::internal
