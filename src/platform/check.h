// Invariant checks: SP_CHECK(condition) for states the code never means to reach (an index past
// the end that the caller's own arithmetic produced, two sizes that must agree). When one fails
// the process writes "file:line: check failed: condition" to stderr and aborts: a loud crash
// (and a core) instead of going on with corrupt state. Always on, in every build type.
//
// Not for input: bad input (a manifest, a request, a file) gets a Status naming what is wrong.
//
//   SP_CHECK(index < count_);
//   SP_CHECK_EQ(data.size(), expected);   // also prints both values
#pragma once

#include <string>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"

namespace sp::internal {

[[noreturn]] void CheckFailed(const char* file, int line, const char* condition,
                              const std::string& values);

}  // namespace sp::internal

#define SP_CHECK(condition)                                            \
  do {                                                                 \
    if (ABSL_PREDICT_FALSE(!(condition))) {                            \
      ::sp::internal::CheckFailed(__FILE__, __LINE__, #condition, ""); \
    }                                                                  \
  } while (false)

// Compares `a` and `b` (each evaluated once; printable by absl::StrCat) with `op`.
#define SP_CHECK_OP_(a, op, b)                                                                 \
  do {                                                                                         \
    const auto& sp_check_a_ = (a);                                                             \
    const auto& sp_check_b_ = (b);                                                             \
    if (ABSL_PREDICT_FALSE(!(sp_check_a_ op sp_check_b_))) {                                   \
      ::sp::internal::CheckFailed(__FILE__, __LINE__, #a " " #op " " #b,                       \
                                  ::absl::StrCat("(", sp_check_a_, " vs ", sp_check_b_, ")")); \
    }                                                                                          \
  } while (false)

#define SP_CHECK_EQ(a, b) SP_CHECK_OP_(a, ==, b)
#define SP_CHECK_NE(a, b) SP_CHECK_OP_(a, !=, b)
#define SP_CHECK_LT(a, b) SP_CHECK_OP_(a, <, b)
#define SP_CHECK_LE(a, b) SP_CHECK_OP_(a, <=, b)
