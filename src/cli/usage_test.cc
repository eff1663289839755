#include "cli/usage.h"

#include <gtest/gtest.h>

namespace sp::cli {
namespace {

// Parses `args` with a small command tree like stillpoint's; returns the usage error, if any.
Status Parse(std::vector<std::string> args) {
  CLI::App root("test", "stillpoint");
  root.require_subcommand(1);
  CLI::App* vm = root.add_subcommand("vm", "VMs");
  CLI::App* define = vm->add_subcommand("define", "define");
  int vcpus = 1;
  double ratio = 1;
  std::string name;
  define->add_option("name", name)->required();
  define->add_option("--vcpus", vcpus);
  define->add_option("--ratio", ratio);
  std::reverse(args.begin(), args.end());
  try {
    root.parse(args);
  } catch (const CLI::ParseError& error) {
    return UsageError(root, error);
  }
  return absl::OkStatus();
}

TEST(UsageErrorTest, ConversionErrorsSayWhatTheOptionTakesAndWhereTheUsageIs) {
  Status status = Parse({"vm", "define", "web01", "--vcpus", "two"});
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_EQ(status.message(),
            "--vcpus: 'two' is not a whole number (see `stillpoint vm define --help`)");
  status = Parse({"vm", "define", "web01", "--ratio", "x"});
  EXPECT_EQ(status.message(), "--ratio: 'x' is not a number (see `stillpoint vm define --help`)");
}

TEST(UsageErrorTest, OtherParseErrorsNameTheCommandsHelp) {
  Status status = Parse({"vm", "define"});
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_NE(status.message().find("name is required"), absl::string_view::npos) << status;
  EXPECT_NE(status.message().find("(see `stillpoint vm define --help`)"), absl::string_view::npos);
  EXPECT_TRUE(Parse({"vm", "define", "web01", "--vcpus", "2"}).ok());
}

using Parts = std::vector<std::pair<std::string, std::string>>;

TEST(SplitSpecTest, QuotedValuesMayHoldCommas) {
  EXPECT_EQ(*SplitSpec("--volume", "name=root,path=/a.qcow2,boot"),
            (Parts{{"name", "root"}, {"path", "/a.qcow2"}, {"boot", ""}}));
  EXPECT_EQ(*SplitSpec("--volume", "name=r,path=\"/a,b.qcow2\",boot"),
            (Parts{{"name", "r"}, {"path", "/a,b.qcow2"}, {"boot", ""}}));
  EXPECT_EQ(*SplitSpec("--volume", "path='/x=y,z',,name=r"),
            (Parts{{"path", "/x=y,z"}, {"name", "r"}}));
  // A quote inside a value is an ordinary character.
  EXPECT_EQ(*SplitSpec("--volume", "path=/it's"), (Parts{{"path", "/it's"}}));
  Status open = SplitSpec("--volume", "name=r,path=\"/a,b").status();
  EXPECT_TRUE(absl::IsInvalidArgument(open));
  EXPECT_NE(open.message().find("is not closed"), absl::string_view::npos) << open;
}

}  // namespace
}  // namespace sp::cli
