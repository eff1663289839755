// Captures interrupted at every step: killed at each named fault point of the cut, export,
// stream and teardown, at random moments, with and without their thaw guard — on the real guest
// under real QEMU with the real guest agent. After each interruption the VM must still run, its
// guest must be thawed within the deadline, the next capture must succeed, and the repository
// must verify clean. Also: two captures of one VM at once, and the default repository's creation
// by several first commands at once.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "capture/fault_points.h"
#include "platform/files.h"
#include "tests/integration/guest.h"

namespace sp {
namespace {

using testing::Contains;
using testing::GuestEnv;
using testing::GuestWorld;

constexpr Millis kBootTimeout{90'000};
// The thaw guard's deadline in these tests; the guest must be thawed well within it.
constexpr int kFreezeDeadlineMs = 8000;

// The one-letter state of a process from /proc (R, S, T, Z...), or '?' when it is gone.
char ProcessState(pid_t pid) {
  auto stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return '?';
  size_t paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() ? (*stat)[paren + 2] : '?';
}

// The thaw guard watching capture `capture_pid`, found by its command line; 0 when none runs.
pid_t GuardOf(pid_t capture_pid) {
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ignored)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry.path().filename().string(), &pid)) continue;
    auto cmdline = ReadFile(entry.path().string() + "/cmdline");
    if (!cmdline.ok()) continue;
    std::vector<std::string> args = absl::StrSplit(*cmdline, '\0', absl::SkipEmpty());
    if (args.size() == 10 && args[1] == "__thaw-guard" && args[8] == absl::StrCat(capture_pid)) {
      return pid;
    }
  }
  return 0;
}

class InterruptionTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(GuestEnv().empty()) << "test guest unavailable"; }

  void Boot() {
    auto booted = world_.BootGuest("web01", kBootTimeout);
    ASSERT_TRUE(booted.ok()) << booted.status();
    vm_ = *booted;
    // A writer inside the guest keeps the disks changing through every capture.
    auto agent = world_.runtime().ConnectAgent(vm_);
    ASSERT_TRUE(agent.ok()) << agent.status();
    auto pid =
        (*agent)->Exec("/bin/sh",
                       {"-c",
                        "i=0; while :; do dd if=/dev/urandom of=/data/w.$((i % 4)) bs=64k count=4 "
                        "conv=fsync 2>/dev/null; i=$((i+1)); sleep 0.05; done"},
                       false, Millis(10'000));
    ASSERT_TRUE(pid.ok()) << pid.status();
  }

  // Starts `stillpoint snapshot create web01 ARGS...` with `fault` armed (may be empty).
  pid_t StartCapture(const std::string& fault, std::vector<std::string> args = {}) {
    SpawnOptions spawn;
    spawn.stdout_path = spawn.stderr_path = world_.dir() + "/capture.out";
    spawn.extra_env = {{"STILLPOINT_HOME", world_.paths().home},
                       {"STILLPOINT_RUN_DIR", world_.paths().run_root}};
    if (!fault.empty()) spawn.extra_env["STILLPOINT_FAULT_AT"] = fault;
    std::vector<std::string> argv = {
        testing::StillpointBinary(),    "snapshot", "create", "web01", "--freeze-deadline-ms",
        absl::StrCat(kFreezeDeadlineMs)};
    argv.insert(argv.end(), args.begin(), args.end());
    auto pid = Spawn(argv, spawn);
    EXPECT_TRUE(pid.ok()) << pid.status();
    return pid.ok() ? *pid : 0;
  }

  ExitStatus Wait(pid_t pid) {
    auto ended = WaitChild(pid, Deadline::In(Millis(120'000)));
    EXPECT_TRUE(ended.ok() && ended->has_value()) << "capture did not end";
    return ended.ok() && ended->has_value() ? **ended : ExitStatus{true, 0, 0};
  }

  // Waits until the capture stopped itself at its armed fault point (":stop").
  bool WaitStopped(pid_t pid) {
    Deadline deadline = Deadline::In(Millis(60'000));
    while (ProcessState(pid) != 'T') {
      if (deadline.Expired() || ProcessState(pid) == 'Z') return false;
      std::this_thread::sleep_for(Millis(10));
    }
    return true;
  }

  // QEMU runs and the guest is thawed (the agent answers and says so) within the deadline.
  void ExpectVmRunsAndThawed(const std::string& after) {
    auto vm = world_.runtime().Refresh(vm_);
    ASSERT_TRUE(vm.ok()) << vm.status();
    ASSERT_EQ(vm->state, catalog::PowerState::kRunning) << after << ": " << vm->state_reason;
    Deadline deadline = Deadline::In(Millis(kFreezeDeadlineMs + 5000));
    std::string last;
    while (true) {
      auto agent = world_.runtime().ConnectAgent(vm_, Millis(2000));
      Status synced = agent.ok() ? (*agent)->Sync(Millis(2000)) : agent.status();
      auto state =
          synced.ok() ? (*agent)->FreezeStatus(Millis(2000)) : StatusOr<qga::FreezeState>(synced);
      if (state.ok() && *state == qga::FreezeState::kThawed) return;
      last = state.ok() ? "frozen" : std::string(state.status().message());
      ASSERT_FALSE(deadline.Expired()) << after << ": the guest is not thawed: " << last;
      std::this_thread::sleep_for(Millis(100));
    }
  }

  // The next capture succeeds and the repository verifies clean.
  void ExpectNextCaptureAndVerify(const std::string& after) {
    auto next = world_.Cli({"snapshot", "create", "web01", "--json"});
    ASSERT_TRUE(next.ok()) << next.status();
    ASSERT_EQ(next->status.code, 0) << after << ": " << next->output;
    auto verify = world_.Cli({"repo", "verify"});
    ASSERT_TRUE(verify.ok()) << verify.status();
    ASSERT_EQ(verify->status.code, 0) << after << ": " << verify->output;
  }

  void ExpectRecovered(const std::string& after) {
    ExpectVmRunsAndThawed(after);
    ExpectNextCaptureAndVerify(after);
  }

  bool EventRecorded(const std::string& kind) {
    auto events = world_.catalog().ListEvents(vm_.id);
    if (!events.ok()) return false;
    for (const auto& event : *events) {
      if (event.kind == kind) return true;
    }
    return false;
  }

  GuestWorld world_;
  catalog::VmRecord vm_;
};

// Kills a capture at `point`; returns whether it got there (it died by SIGKILL).
TEST_F(InterruptionTest, KilledAtEveryFaultPointTheNextCaptureSucceeds) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  ASSERT_NO_FATAL_FAILURE(ExpectNextCaptureAndVerify("the first capture"));
  std::set<std::string> reached;
  for (const std::vector<std::string>& mode :
       {std::vector<std::string>{}, std::vector<std::string>{"--consistency", "crash-only"}}) {
    for (const char* point : capture::kCaptureFaultPoints) {
      std::string label = absl::StrCat("killed at ", point, mode.empty() ? "" : " (crash-only)");
      // The clean-up steps only run when there is something to clean: leave everything first.
      if (absl::StartsWith(point, "cleanup.")) {
        ASSERT_TRUE(Wait(StartCapture("stream.chunk", mode)).signaled) << label;
      }
      ExitStatus ended = Wait(StartCapture(point, mode));
      if (ended.signaled) {
        EXPECT_EQ(ended.signal, SIGKILL) << label;
        reached.insert(point);
      } else {
        EXPECT_EQ(ended.code, 0) << label << ": "
                                 << ReadFile(world_.dir() + "/capture.out").value_or("");
      }
      ASSERT_NO_FATAL_FAILURE(ExpectRecovered(label));
    }
  }
  for (const char* point : capture::kCaptureFaultPoints) {
    EXPECT_EQ(reached.count(point), 1u) << "no capture reached fault point " << point;
  }
}

TEST_F(InterruptionTest, GuardKilledOrBothKilledWhileFrozen) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  for (const char* point : {"cut.frozen", "cut.switched"}) {
    for (bool both : {false, true}) {
      std::string label = absl::StrCat(both ? "capture and guard" : "guard", " killed at ", point);
      pid_t capture = StartCapture(absl::StrCat(point, ":stop"));
      ASSERT_TRUE(WaitStopped(capture)) << label;
      pid_t guard = GuardOf(capture);
      ASSERT_NE(guard, 0) << label << ": no thaw guard";
      auto killed_at = std::chrono::steady_clock::now();
      ASSERT_TRUE(SendSignal(guard, SIGKILL).ok());
      ASSERT_TRUE(SendSignal(capture, both ? SIGKILL : SIGCONT).ok());
      ExitStatus ended = Wait(capture);
      if (both) {
        ASSERT_NO_FATAL_FAILURE(ExpectVmRunsAndThawed(label));
        std::cerr << label << ": guest thawed " << MillisSince(killed_at) << " ms later\n";
        Deadline recorded = Deadline::In(Millis(10'000));
        while (!EventRecorded("agent.thawed-abandoned") && !recorded.Expired()) {
          std::this_thread::sleep_for(Millis(50));
        }
        EXPECT_TRUE(EventRecorded("agent.thawed-abandoned")) << label;
      } else {
        // The capture thaws the guest itself and finishes its point.
        EXPECT_TRUE(ended.success())
            << label << ": " << ReadFile(world_.dir() + "/capture.out").value_or("");
      }
      ASSERT_NO_FATAL_FAILURE(ExpectRecovered(label));
    }
  }
}

TEST_F(InterruptionTest, KilledAtRandomMoments) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto start = std::chrono::steady_clock::now();
  ASSERT_NO_FATAL_FAILURE(ExpectNextCaptureAndVerify("the first capture"));
  double typical_ms = MillisSince(start);
  uint32_t seed = std::random_device{}();
  std::cerr << "random kills: seed " << seed << ", a capture takes about " << typical_ms << " ms\n";
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> delay(0, typical_ms);
  for (int round = 0; round < 50; ++round) {
    bool with_guard = round % 3 == 2;
    int wait_ms = static_cast<int>(delay(random));
    std::string label = absl::StrCat("round ", round, " (seed ", seed, "): killed after ", wait_ms,
                                     " ms", with_guard ? " with its guard" : "");
    pid_t capture = StartCapture("");
    std::this_thread::sleep_for(Millis(wait_ms));
    pid_t guard = with_guard ? GuardOf(capture) : 0;
    (void)SendSignal(capture, SIGKILL);
    if (guard != 0) (void)SendSignal(guard, SIGKILL);
    Wait(capture);
    ASSERT_NO_FATAL_FAILURE(ExpectRecovered(label));
  }
}

TEST_F(InterruptionTest, SecondCaptureOfARunningVmIsRefusedAtOnce) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  pid_t first = StartCapture("stream.chunk:stop");
  ASSERT_TRUE(WaitStopped(first));
  auto start = std::chrono::steady_clock::now();
  auto second = world_.Cli({"snapshot", "create", "web01"});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(second->status.code, 4) << second->output;
  EXPECT_TRUE(Contains(second->output, "another capture of VM 'web01' is running"))
      << second->output;
  EXPECT_LT(MillisSince(start), 3000) << "the refusal must not wait on QEMU's QMP socket";
  ASSERT_TRUE(SendSignal(first, SIGCONT).ok());
  EXPECT_TRUE(Wait(first).success()) << ReadFile(world_.dir() + "/capture.out").value_or("");
  ASSERT_NO_FATAL_FAILURE(ExpectRecovered("after two captures at once"));
}

// Several first commands on a fresh state directory, each a real process, all create the default
// repository at the same moment; one stopped VM is captured by two of them at once.
TEST_F(InterruptionTest, ConcurrentFirstCapturesOfAStoppedVm) {
  auto vm = world_.DefineGuest("web01");
  ASSERT_TRUE(vm.ok()) << vm.status();
  std::vector<pid_t> captures;
  for (int i = 0; i < 4; ++i) {
    SpawnOptions spawn;
    spawn.stdout_path = spawn.stderr_path = absl::StrCat(world_.dir(), "/first", i, ".out");
    spawn.extra_env = {{"STILLPOINT_HOME", world_.paths().home},
                       {"STILLPOINT_RUN_DIR", world_.paths().run_root}};
    auto pid = Spawn({testing::StillpointBinary(), "snapshot", "create", "web01"}, spawn);
    ASSERT_TRUE(pid.ok());
    captures.push_back(*pid);
  }
  int succeeded = 0;
  for (size_t i = 0; i < captures.size(); ++i) {
    ExitStatus ended = Wait(captures[i]);
    std::string output = ReadFile(absl::StrCat(world_.dir(), "/first", i, ".out")).value_or("");
    EXPECT_FALSE(Contains(output, "not empty")) << output;
    if (ended.success()) {
      ++succeeded;
    } else {
      EXPECT_EQ(ended.code, 4) << output;
      EXPECT_TRUE(Contains(output, "another capture of VM 'web01' is running")) << output;
    }
  }
  EXPECT_GE(succeeded, 1);
  auto verify = world_.Cli({"repo", "verify"});
  ASSERT_TRUE(verify.ok());
  EXPECT_EQ(verify->status.code, 0) << verify->output;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(world_.paths().home, ignored)) {
    EXPECT_FALSE(Contains(entry.path().filename().string(), "repo.new-"))
        << "a losing first command left " << entry.path();
  }
}

// `vm start` while a restore in place of the VM is writing its images is refused, and the restore
// finishes untouched; afterwards the VM starts.
TEST_F(InterruptionTest, StartIsRefusedWhileARestoreRuns) {
  ASSERT_NO_FATAL_FAILURE(Boot());
  auto point = world_.Cli({"snapshot", "create", "web01", "--json"});
  ASSERT_EQ(point->status.code, 0) << point->output;
  std::string id = nlohmann::json::parse(point->output).value("id", "");
  ASSERT_EQ(world_.Cli({"vm", "stop", "web01"})->status.code, 0);
  SpawnOptions spawn;
  spawn.stdout_path = spawn.stderr_path = world_.dir() + "/restore.out";
  spawn.extra_env = {{"STILLPOINT_HOME", world_.paths().home},
                     {"STILLPOINT_RUN_DIR", world_.paths().run_root},
                     {"STILLPOINT_FAULT_AT", "restore.written:stop"}};
  auto restore = Spawn({testing::StillpointBinary(), "vm", "restore", "web01", id}, spawn);
  ASSERT_TRUE(restore.ok());
  ASSERT_TRUE(WaitStopped(*restore)) << ReadFile(world_.dir() + "/restore.out").value_or("");
  auto start = world_.Cli({"vm", "start", "web01"});
  EXPECT_EQ(start->status.code, 4) << start->output;
  EXPECT_TRUE(Contains(start->output, "being started or restored")) << start->output;
  ASSERT_TRUE(SendSignal(*restore, SIGCONT).ok());
  EXPECT_TRUE(Wait(*restore).success()) << ReadFile(world_.dir() + "/restore.out").value_or("");
  ASSERT_EQ(world_.Cli({"vm", "start", "web01"})->status.code, 0);
  ASSERT_TRUE(world_.WaitForAgent(vm_, kBootTimeout).ok());
}

}  // namespace
}  // namespace sp
