#include "platform/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include "platform/files.h"
#include "testing/temp_dir.h"

namespace sp {
namespace {

TEST(ProcessTest, RunCommandCapturesOutputAndStatus) {
  auto result = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, Deadline::In(Millis(5000)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status.code, 3);
  EXPECT_NE(result->output.find("out"), std::string::npos);
  EXPECT_NE(result->output.find("err"), std::string::npos);
  auto failed = RunCommandOk({"sh", "-c", "echo broken; exit 1"}, Deadline::In(Millis(5000)));
  EXPECT_NE(failed.status().message().find("broken"), std::string::npos);
}

TEST(ProcessTest, MissingProgramIsNotFound) {
  auto result = RunCommand({"no-such-program-xyz"}, Deadline::In(Millis(5000)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound) << result.status();
}

TEST(ProcessTest, RunCommandKillsAHangingTool) {
  auto start = std::chrono::steady_clock::now();
  auto result = RunCommand({"sleep", "30"}, Deadline::In(Millis(200)));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(MillisSince(start), 5000);
}

TEST(ProcessTest, SpawnWaitAndSignal) {
  testing::TempDir dir;
  SpawnOptions options;
  options.stdout_path = dir.path() + "/out.log";
  auto pid = Spawn({"sh", "-c", "echo hello; exec sleep 30"}, options);
  ASSERT_TRUE(pid.ok()) << pid.status();
  EXPECT_TRUE(ProcessAlive(*pid));
  auto still = WaitChild(*pid, Deadline::In(Millis(50)));
  ASSERT_TRUE(still.ok());
  EXPECT_FALSE(still->has_value());
  ASSERT_TRUE(SendSignal(*pid, SIGKILL).ok());
  auto ended = WaitChild(*pid, Deadline::In(Millis(5000)));
  ASSERT_TRUE(ended.ok() && ended->has_value());
  EXPECT_TRUE((*ended)->signaled);
  EXPECT_EQ((*ended)->signal, SIGKILL);
  EXPECT_EQ((*ended)->Describe(), "killed by signal 9 (SIGKILL)");
  EXPECT_EQ(*ReadFile(options.stdout_path), "hello\n");
  EXPECT_FALSE(ProcessAlive(*pid));
}

}  // namespace
}  // namespace sp
