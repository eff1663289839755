#include "platform/process.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "platform/files.h"
#include "testing/temp_dir.h"

namespace sp {
namespace {

TEST(ProcessTest, RunCommandCapturesOutputAndStatus) {
  auto result =
      RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, Deadline::In(Millis(5000)));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status.code, 3);
  EXPECT_NE(result->output.find("out"), std::string::npos);
  EXPECT_NE(result->output.find("err"), std::string::npos);
  auto failed = RunCommandOk({"sh", "-c", "echo broken; exit 1"}, Deadline::In(Millis(5000)));
  EXPECT_NE(failed.status().message().find("broken"), std::string::npos);
}

// Waits until `pid` is gone (or a zombie) or `deadline` passes; true when gone.
bool WaitGone(pid_t pid, Deadline deadline) {
  while (ProcessAlive(pid)) {
    if (deadline.Expired()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

TEST(ProcessTest, ChildDiesWithItsParentEvenAfterSigkill) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t parent = ::fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    SpawnOptions options;
    options.parent_death_signal = SIGKILL;
    auto child = Spawn({"sleep", "60"}, options);
    pid_t pid = child.ok() ? *child : -1;
    if (::write(report[1], &pid, sizeof(pid)) != sizeof(pid)) ::_exit(1);
    ::pause();
    ::_exit(0);
  }
  pid_t child = -1;
  ASSERT_EQ(::read(report[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  ASSERT_GT(child, 0);
  EXPECT_TRUE(ProcessAlive(child));
  ::kill(parent, SIGKILL);
  ::waitpid(parent, nullptr, 0);
  EXPECT_TRUE(WaitGone(child, Deadline::In(Millis(10'000)))) << "the child outlived its parent";
  ::close(report[0]);
  ::close(report[1]);
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
