// SP_CHECK: a broken invariant stops the process loudly, naming where and what.
#include "platform/check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace sp {
namespace {

TEST(CheckDeathTest, PassingChecksDoNothingAndEvaluateOnce) {
  int calls = 0;
  auto next = [&] { return ++calls; };
  SP_CHECK(next() == 1);
  SP_CHECK_EQ(next(), 2);
  SP_CHECK_LT(next(), 4);
  SP_CHECK_LE(next(), 4);
  SP_CHECK_NE(next(), 0);
  EXPECT_EQ(calls, 5);
}

TEST(CheckDeathTest, AFailedCheckAbortsNamingFileLineAndCondition) {
  std::vector<int> chunks(3);
  size_t index = chunks.size();
  EXPECT_DEATH(SP_CHECK(index < chunks.size()),
               "check_test.cc:[0-9]+: check failed: index < chunks.size\\(\\)");
  uint64_t written = 4096;
  EXPECT_DEATH(SP_CHECK_EQ(written, uint64_t{512}),
               "check failed: written == uint64_t\\{512\\} \\(4096 vs 512\\)");
}

}  // namespace
}  // namespace sp
