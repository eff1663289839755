// The cut and its teardown against a model of QEMU 7.2's block layer (testing/fake_qemu.h) that
// can fail any command or stop answering after any number of commands (the capture process
// killed there). Whatever happened, the teardown or the clean-up of the next capture must leave
// the graph as it was and the bitmaps usable.
#include "capture/live_cut.h"

#include <gtest/gtest.h>

#include "testing/fake_qemu.h"
#include "testing/temp_dir.h"

namespace sp::capture {
namespace {

using testing::FakeQemu;

constexpr char kPrev[] = "stillpoint-prev";
constexpr char kNew[] = "stillpoint-new";

std::vector<VolumeCut> Volumes() {
  return {{"root", "root-fmt", FakeQemu::DrivePath("root"), 1 << 20, kPrev, kNew},
          {"data", "data-fmt", FakeQemu::DrivePath("data"), 1 << 20, kPrev, kNew}};
}

std::vector<DeviceDrive> Devices() {
  return {{FakeQemu::DrivePath("root"), "root-fmt"}, {FakeQemu::DrivePath("data"), "data-fmt"}};
}

class LiveCutTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    for (const char* node : {"root-fmt", "data-fmt"}) qemu_.nodes_[node].bitmaps[kPrev] = {};
  }

  // Prepare, cut (paused or not), export; the first error.
  Status Capture(LiveCut& cut) {
    SP_RETURN_IF_ERROR(cut.Prepare(Volumes()));
    SP_RETURN_IF_ERROR(cut.Cut(/*pause_vcpus=*/GetParam()).status());
    return cut.Export();
  }

  // The previous bitmap is usable again (present and recording) and the new one is gone, or
  // the new one took over (success).
  void ExpectBitmapsUsable(bool success) {
    for (const char* node : {"root-fmt", "data-fmt"}) {
      const auto& bitmaps = qemu_.nodes_[node].bitmaps;
      if (success) {
        EXPECT_EQ(bitmaps.count(kPrev), 0u) << node;
        ASSERT_EQ(bitmaps.count(kNew), 1u) << node;
        EXPECT_TRUE(bitmaps.at(kNew).recording) << node;
      } else {
        EXPECT_EQ(bitmaps.count(kNew), 0u) << node;
        ASSERT_EQ(bitmaps.count(kPrev), 1u) << node;
        EXPECT_TRUE(bitmaps.at(kPrev).recording) << node;
      }
    }
  }

  testing::TempDir dir_;
  FakeQemu qemu_;
};

TEST_P(LiveCutTest, CaptureAndTeardownLeaveTheGraphAsItWas) {
  LiveCut cut(&qemu_, dir_.path() + "/scratch", dir_.path() + "/nbd.sock");
  ASSERT_TRUE(Capture(cut).ok());
  EXPECT_EQ(qemu_.drives_[FakeQemu::DrivePath("root")], "sp-c0");
  EXPECT_EQ(qemu_.exports_.size(), 2u);
  ASSERT_TRUE(cut.Teardown(/*success=*/true).ok());
  EXPECT_EQ(qemu_.Leftovers(), "");
  EXPECT_TRUE(qemu_.violations().empty()) << qemu_.violations()[0];
  ExpectBitmapsUsable(true);
}

// Every command of the capture fails in turn: the teardown still restores everything.
TEST_P(LiveCutTest, AnyCommandFailingLeavesTheGraphAndBitmapsUsable) {
  int total = 0;
  {
    FakeQemu probe;
    for (const char* node : {"root-fmt", "data-fmt"}) probe.nodes_[node].bitmaps[kPrev] = {};
    LiveCut cut(&probe, dir_.path() + "/probe", dir_.path() + "/probe.sock");
    ASSERT_TRUE(Capture(cut).ok());
    total = probe.commands();
  }
  for (int n = 0; n < total; ++n) {
    FakeQemu qemu;
    for (const char* node : {"root-fmt", "data-fmt"}) qemu.nodes_[node].bitmaps[kPrev] = {};
    qemu.FailAfter(n, /*fail=*/true);
    {
      LiveCut cut(&qemu, dir_.path() + "/s" + std::to_string(n), dir_.path() + "/n.sock");
      Status captured = Capture(cut);
      EXPECT_FALSE(captured.ok()) << "command " << n + 1 << " failed unnoticed";
      (void)cut.Teardown(/*success=*/false);
    }
    EXPECT_EQ(qemu.Leftovers(), "") << "after command " << n + 1 << " failed";
    EXPECT_TRUE(qemu.violations().empty()) << "command " << n + 1 << ": " << qemu.violations()[0];
    qemu_ = qemu;
    ExpectBitmapsUsable(false);
  }
}

// The capture is killed after each command (QEMU keeps what it did); the clean-up that starts
// the next capture removes it all without a command QEMU would abort on or refuse.
TEST_P(LiveCutTest, CleanupAfterAKillAtAnyStep) {
  int total = 0;
  {
    LiveCut cut(&qemu_, dir_.path() + "/probe", dir_.path() + "/probe.sock");
    ASSERT_TRUE(Capture(cut).ok());
    ASSERT_TRUE(cut.Teardown(true).ok());
    total = qemu_.commands();
  }
  for (int n = 0; n <= total; ++n) {
    FakeQemu qemu;
    for (const char* node : {"root-fmt", "data-fmt"}) qemu.nodes_[node].bitmaps[kPrev] = {};
    qemu.FailAfter(n, /*fail=*/false);
    {
      LiveCut cut(&qemu, dir_.path() + "/k" + std::to_string(n), dir_.path() + "/k.sock");
      if (Capture(cut).ok()) (void)cut.Teardown(true);
    }  // its destructor's teardown finds QEMU gone for it, like a killed process
    qemu.FailAfter(-1, true);
    auto cleaned = RemoveCaptureNodes(&qemu, Devices(), /*stop_server=*/true, "cleanup");
    ASSERT_TRUE(cleaned.ok()) << "killed after command " << n << ": " << cleaned.status();
    auto resumed = vm::ResumeIfPausedByCapture(&qemu, dir_.path() + "/k" + std::to_string(n));
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_EQ(qemu.Leftovers(), "") << "killed after command " << n;
    EXPECT_TRUE(qemu.violations().empty())
        << "killed after command " << n << ": " << qemu.violations()[0];
    // A new capture works on the cleaned graph.
    qemu.FailAfter(-1, true);
    LiveCut next(&qemu, dir_.path() + "/next" + std::to_string(n), dir_.path() + "/x.sock");
    std::vector<VolumeCut> fresh = Volumes();
    for (VolumeCut& volume : fresh) {
      volume.prev_bitmap.clear();
      volume.new_bitmap = absl::StrCat("stillpoint-next", n);
    }
    ASSERT_TRUE(next.Prepare(fresh).ok());
    ASSERT_TRUE(next.Cut(GetParam()).ok());
    ASSERT_TRUE(next.Export().ok());
    ASSERT_TRUE(next.Teardown(true).ok());
    EXPECT_EQ(qemu.Leftovers(), "");
  }
}

INSTANTIATE_TEST_SUITE_P(FrozenOrPaused, LiveCutTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "Paused" : "Frozen";
                         });

}  // namespace
}  // namespace sp::capture
