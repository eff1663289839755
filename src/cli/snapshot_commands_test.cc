// `snapshot show` of recovery points written by the stillpoint before version 2 prints exactly
// what that stillpoint printed, for people and with --json (tests/data/v1/README.md: its
// repository, the manifests of a running VM's captures, and what it showed of them).
#include "cli/snapshot_commands.h"

#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"
#include "platform/files.h"
#include "testing/temp_dir.h"

namespace sp::cli {
namespace {

namespace fs = std::filesystem;

const std::string kData = std::string(SP_TEST_DATA_DIR) + "/v1";

// Parses `args` as the command line and runs the selected action, as main() does; returns what
// it printed on stdout.
std::string Output(std::vector<std::string> args) {
  Context context;
  CLI::App root("stillpoint");
  root.require_subcommand(1);
  RegisterSnapshotCommands(root, context);
  std::vector<const char*> argv = {"stillpoint"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  ::testing::internal::CaptureStdout();
  Status status = absl::UnknownError("not run");
  try {
    root.parse(static_cast<int>(argv.size()), argv.data());
    status = context.action ? context.action() : absl::OkStatus();
  } catch (const CLI::ParseError& error) {
    status = absl::InvalidArgumentError(error.what());
  }
  std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(status.ok()) << status;
  return out;
}

class SnapshotShowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string home = dir_.path() + "/home", repo = home + "/repo";
    ::setenv("STILLPOINT_HOME", home.c_str(), 1);
    ::setenv("STILLPOINT_RUN_DIR", (dir_.path() + "/run").c_str(), 1);
    fs::create_directories(home);
    fs::copy(kData + "/repository", repo, fs::copy_options::recursive);
    for (const char* shown : {"show.json", "show.txt"}) fs::remove(repo + "/" + shown);
    for (const char* dir : {"pending", "locks", "gc/trash"})
      fs::create_directories(repo + "/" + dir);
    for (const std::string& id : kGuestPoints) {
      fs::create_directories(repo + "/points/" + id);
      fs::copy(kData + "/guest/" + id + ".manifest.json",
               repo + "/points/" + id + "/manifest.json");
    }
    fs::permissions(repo, fs::perms::owner_all);
    fs::permissions(repo + "/config", fs::perms::owner_read | fs::perms::owner_write);
  }
  void TearDown() override {
    ::unsetenv("STILLPOINT_HOME");
    ::unsetenv("STILLPOINT_RUN_DIR");
  }

  // Captures of a running VM: a full one and an incremental one (without their indexes, which
  // `show` does not read).
  const std::vector<std::string> kGuestPoints = {"20261203T161655Z-d2908c2f",
                                                 "20261203T161658Z-c6691309"};
  sp::testing::TempDir dir_;
};

TEST_F(SnapshotShowTest, PrintsWhatTheStillpointBeforeVersionTwoPrinted) {
  EXPECT_EQ(Output({"snapshot", "show", "20261203T161629Z-9b03e381", "--json"}),
            *ReadFile(kData + "/repository/show.json"));
  EXPECT_EQ(Output({"snapshot", "show", "20261203T161629Z-9b03e381"}),
            *ReadFile(kData + "/repository/show.txt"));
  for (const std::string& id : kGuestPoints) {
    EXPECT_EQ(Output({"snapshot", "show", id, "--json"}),
              *ReadFile(kData + "/guest/" + id + ".show.json"));
    EXPECT_EQ(Output({"snapshot", "show", id}), *ReadFile(kData + "/guest/" + id + ".show.txt"));
  }
}

}  // namespace
}  // namespace sp::cli
