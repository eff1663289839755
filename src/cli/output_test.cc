#include "cli/output.h"

#include <gtest/gtest.h>

namespace sp::cli {
namespace {

TEST(OutputTest, SizesParseAndPrint) {
  EXPECT_EQ(*ParseSize("512M"), 512LL << 20);
  EXPECT_EQ(*ParseSize("4G"), 4LL << 30);
  EXPECT_EQ(*ParseSize("4GiB"), 4LL << 30);
  EXPECT_EQ(*ParseSize("1.5K"), 1536);
  EXPECT_EQ(*ParseSize("1000"), 1000);
  EXPECT_EQ(ParseSize("lots").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSize("-1G").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(12), "12 B");
}

TEST(OutputTest, ExitCodesFollowTheStatus) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), 0);
  EXPECT_EQ(ExitCodeFor(absl::NotFoundError("x")), 3);
  EXPECT_EQ(ExitCodeFor(absl::FailedPreconditionError("x")), 4);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("x")), 5);
  EXPECT_EQ(ExitCodeFor(absl::AlreadyExistsError("x")), 6);
  EXPECT_EQ(ExitCodeFor(absl::DataLossError("x")), 8);
}

TEST(OutputTest, TableAlignsColumns) {
  Table table({"NAME", "STATE"});
  table.AddRow({"web01", "running"});
  table.AddRow({"a", "stopped-clean"});
  EXPECT_EQ(table.Render(), "NAME   STATE\nweb01  running\na      stopped-clean\n");
}

}  // namespace
}  // namespace sp::cli
