// ConnectNbdUnix against a real QEMU NBD server (qemu-storage-daemon driven over QMP), with a
// dirty bitmap: only what was written after the bitmap started comes back dirty.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <map>
#include <thread>

#include "block/block_source.h"
#include "block/image_writer.h"
#include "block/stream.h"
#include "platform/files.h"
#include "platform/process.h"
#include "qmp/qmp_client.h"
#include "testing/temp_dir.h"

namespace sp::block {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kCluster = 64 * 1024;

Status RunTool(const std::vector<std::string>& argv) {
  return RunCommandOk(argv, Deadline::In(Millis(30'000))).status();
}

bool WaitForPath(const std::string& path, Deadline deadline) {
  while (!PathExists(path)) {
    if (deadline.Expired()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition
  }
  return true;
}

// qemu-storage-daemon with the qcow2 node "fmt", a QMP socket, a bitmap "b0" started after
// [0, 2 MiB) was written, then writes of [5 MiB, +64 KiB) and [9 MiB + 4 KiB, +4 KiB) through a
// writable export; the read-only export "vda" carries the (then disabled) bitmap.
class LiveSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string image = dir_.path() + "/d.qcow2";
    ASSERT_TRUE(RunTool({"qemu-img", "create", "-q", "-f", "qcow2", image, "16M"}).ok());
    ASSERT_TRUE(RunTool({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 2M", image}).ok());
    qmp_path_ = dir_.path() + "/qmp.sock";
    nbd_path_ = dir_.path() + "/nbd.sock";
    auto pid = Spawn(
        {"qemu-storage-daemon", "--blockdev", "driver=file,filename=" + image + ",node-name=file0",
         "--blockdev", "driver=qcow2,file=file0,node-name=fmt", "--chardev",
         "socket,id=m0,path=" + qmp_path_ + ",server=on,wait=off", "--monitor", "chardev=m0"},
        {});
    ASSERT_TRUE(pid.ok()) << pid.status();
    daemon_ = *pid;
    // The socket file appears when it is bound, a moment before the daemon listens on it.
    Deadline started = Deadline::In(Millis(10'000));
    ASSERT_TRUE(WaitForPath(qmp_path_, started));
    auto qmp = qmp::Client::Connect(qmp_path_, "storage daemon");
    while (!qmp.ok() && qmp.status().code() == absl::StatusCode::kUnavailable &&
           !started.Expired()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition
      qmp = qmp::Client::Connect(qmp_path_, "storage daemon");
    }
    ASSERT_TRUE(qmp.ok()) << qmp.status();
    qmp_ = std::move(qmp).value();
    Qmp("block-dirty-bitmap-add", {{"node", "fmt"}, {"name", "b0"}});
    Qmp("nbd-server-start", {{"addr", {{"type", "unix"}, {"data", {{"path", nbd_path_}}}}}});
    Qmp("block-export-add",
        {{"type", "nbd"}, {"id", "w"}, {"node-name", "fmt"}, {"name", "w"}, {"writable", true}});
    std::string uri = "nbd+unix:///w?socket=" + nbd_path_;
    ASSERT_TRUE(RunTool({"qemu-io", "-f", "raw", "-c", "write -P 0x5a 5M 64k", "-c",
                         "write -P 0x6b 9220k 4k", uri})
                    .ok());
    // As at a capture's cut: the bitmap of the previous point stops recording, then is exported.
    Qmp("block-dirty-bitmap-disable", {{"node", "fmt"}, {"name", "b0"}});
    Qmp("block-export-add", {{"type", "nbd"},
                             {"id", "r"},
                             {"node-name", "fmt"},
                             {"name", "vda"},
                             {"writable", false},
                             {"bitmaps", {"b0"}}});
  }

  void TearDown() override {
    if (daemon_ > 0) {
      (void)SendSignal(daemon_, SIGCONT);
      (void)SendSignal(daemon_, SIGKILL);
      (void)WaitChild(daemon_, Deadline::In(Millis(5000)));
    }
  }

  void Qmp(const std::string& command, const qmp::json& arguments) {
    auto result = qmp_->Execute(command, arguments);
    ASSERT_TRUE(result.ok()) << command << ": " << result.status();
  }

  testing::TempDir dir_;
  std::string qmp_path_;
  std::string nbd_path_;
  pid_t daemon_ = 0;
  std::unique_ptr<qmp::Client> qmp_;
};

TEST_F(LiveSourceTest, OnlyWrittenExtentsAreDirty) {
  ConnectOptions options;
  options.dirty_bitmap = "b0";
  auto source = ConnectNbdUnix(nbd_path_, "vda", options);
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_TRUE((*source)->has_dirty_bitmap());
  EXPECT_EQ((*source)->size(), 16 * kMiB);
  auto extents = (*source)->Extents(0, 16 * kMiB);
  ASSERT_TRUE(extents.ok()) << extents.status();
  std::vector<std::pair<uint64_t, uint64_t>> dirty;
  uint64_t at = 0;
  for (const Extent& extent : *extents) {
    EXPECT_EQ(extent.offset, at);
    at += extent.length;
    if (extent.dirty) dirty.emplace_back(extent.offset, extent.length);
  }
  EXPECT_EQ(at, 16 * kMiB);
  std::vector<std::pair<uint64_t, uint64_t>> expected = {{5 * kMiB, kCluster},
                                                         {9 * kMiB, kCluster}};
  EXPECT_EQ(dirty, expected);
}

TEST_F(LiveSourceTest, IncrementalStreamReusesCleanChunks) {
  ConnectOptions options;
  options.dirty_bitmap = "b0";
  auto source = ConnectNbdUnix(nbd_path_, "vda", options);
  ASSERT_TRUE(source.ok()) << source.status();
  StreamOptions stream_options;
  stream_options.incremental = true;
  std::map<uint64_t, ChunkKind> kinds;
  std::map<uint64_t, std::string> data;
  auto stats = StreamVolume(**source, kMiB, stream_options,
                            [&](uint64_t index, ChunkKind kind, std::string bytes) {
                              kinds[index] = kind;
                              data[index] = std::move(bytes);
                              return absl::OkStatus();
                            });
  ASSERT_TRUE(stats.ok()) << stats.status();
  for (uint64_t i = 0; i < 16; ++i) {
    ChunkKind expected = i < 2                ? ChunkKind::kReuseParent
                         : (i == 5 || i == 9) ? ChunkKind::kData
                                              : ChunkKind::kZero;
    EXPECT_EQ(kinds[i], expected) << "chunk " << i;
  }
  EXPECT_EQ(data[5].substr(0, kCluster), std::string(kCluster, '\x5a'));
  EXPECT_EQ(data[9].substr(4096, 4096), std::string(4096, '\x6b'));
  EXPECT_EQ(stats->bytes_read, 2 * kMiB);
  EXPECT_EQ(stats->bytes_reused, 2 * kMiB);
}

TEST_F(LiveSourceTest, PatchesReadOnlyTheDirtyClusters) {
  ConnectOptions options;
  options.dirty_bitmap = "b0";
  auto source = ConnectNbdUnix(nbd_path_, "vda", options);
  ASSERT_TRUE(source.ok()) << source.status();
  StreamOptions stream_options;
  stream_options.incremental = true;
  stream_options.patches.sub_chunk_size = kCluster;
  stream_options.patches.fits = [](uint64_t, const std::vector<uint32_t>& dirty) {
    return dirty.size() <= 4;
  };
  std::map<uint64_t, SubChunks> patches;
  stream_options.patches.sink = [&](uint64_t index, SubChunks subs) {
    patches[index] = std::move(subs);
    return absl::OkStatus();
  };
  auto to_read = BytesToRead(**source, kMiB, stream_options);
  ASSERT_TRUE(to_read.ok()) << to_read.status();
  std::map<uint64_t, ChunkKind> kinds;
  auto stats = StreamVolume(**source, kMiB, stream_options,
                            [&](uint64_t index, ChunkKind kind, std::string) {
                              kinds[index] = kind;
                              return absl::OkStatus();
                            });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(kinds.size(), 14u);
  ASSERT_EQ(patches.size(), 2u);
  ASSERT_EQ(patches[5].size(), 1u);
  EXPECT_EQ(patches[5][0], std::make_pair(0u, std::string(kCluster, '\x5a')));
  ASSERT_EQ(patches[9].size(), 1u);
  EXPECT_EQ(patches[9][0].first, 0u);
  EXPECT_EQ(patches[9][0].second.substr(4096, 4096), std::string(4096, '\x6b'));
  EXPECT_EQ(stats->bytes_read, 2 * kCluster);
  EXPECT_EQ(*to_read, 2 * kCluster);
}

TEST_F(LiveSourceTest, WithoutBitmapEverythingIsDirty) {
  auto source = ConnectNbdUnix(nbd_path_, "vda");
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_FALSE((*source)->has_dirty_bitmap());
  auto extents = (*source)->Extents(0, 16 * kMiB);
  ASSERT_TRUE(extents.ok()) << extents.status();
  for (const Extent& extent : *extents) EXPECT_TRUE(extent.dirty);
  std::string bytes(4, '\0');
  ASSERT_TRUE((*source)->ReadAt(kMiB, 4, bytes.data()).ok());
  EXPECT_EQ(bytes, std::string(4, '\x11'));
}

TEST_F(LiveSourceTest, UnknownBitmapOrExportIsAnError) {
  ConnectOptions options;
  options.dirty_bitmap = "nope";
  auto source = ConnectNbdUnix(nbd_path_, "vda", options);
  EXPECT_EQ(source.status().code(), absl::StatusCode::kNotFound) << source.status();
  auto wrong_export = ConnectNbdUnix(nbd_path_, "vdz");
  EXPECT_FALSE(wrong_export.ok());
}

TEST_F(LiveSourceTest, StoppedServerGivesDeadlineExceeded) {
  ConnectOptions options;
  options.io_timeout = Millis(300);
  auto source = ConnectNbdUnix(nbd_path_, "vda", options);
  ASSERT_TRUE(source.ok()) << source.status();
  ASSERT_TRUE(SendSignal(daemon_, SIGSTOP).ok());
  std::string bytes(kMiB, '\0');
  auto start = std::chrono::steady_clock::now();
  Status read = (*source)->ReadAt(0, kMiB, bytes.data());
  EXPECT_EQ(read.code(), absl::StatusCode::kDeadlineExceeded) << read;
  EXPECT_NE(read.message().find("offset 0"), std::string::npos) << read;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Broken from now on, without waiting again.
  EXPECT_EQ((*source)->Extents(0, kMiB).status().code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(SendSignal(daemon_, SIGCONT).ok());
}

TEST_F(LiveSourceTest, WriterWritesThroughAWritableExportAndRefusesAReadOnlyOne) {
  auto writer = ConnectNbdUnixForWriting(nbd_path_, "w");
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE((*writer)->Write(std::string(kCluster, '\x77'), 3 * kMiB).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  auto source = ConnectNbdUnix(nbd_path_, "vda");
  ASSERT_TRUE(source.ok()) << source.status();
  std::string bytes(kCluster, '\0');
  ASSERT_TRUE((*source)->ReadAt(3 * kMiB, kCluster, bytes.data()).ok());
  EXPECT_EQ(bytes, std::string(kCluster, '\x77'));

  auto read_only = ConnectNbdUnixForWriting(nbd_path_, "vda");
  EXPECT_EQ(read_only.status().code(), absl::StatusCode::kFailedPrecondition) << read_only.status();
}

TEST_F(LiveSourceTest, WriterToAStoppedServerGivesDeadlineExceeded) {
  WriterOptions options;
  options.io_timeout = Millis(300);
  auto writer = ConnectNbdUnixForWriting(nbd_path_, "w", options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(SendSignal(daemon_, SIGSTOP).ok());
  ASSERT_TRUE((*writer)->Write(std::string(kCluster, 'x'), 4 * kMiB).ok());  // only queued
  auto start = std::chrono::steady_clock::now();
  Status finished = (*writer)->Finish();
  EXPECT_EQ(finished.code(), absl::StatusCode::kDeadlineExceeded) << finished;
  EXPECT_NE(finished.message().find("writing at offset 4194304"), std::string::npos) << finished;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  // Broken from now on, without waiting again.
  EXPECT_EQ((*writer)->Write("y", 0).code(), absl::StatusCode::kDeadlineExceeded);
  ASSERT_TRUE(SendSignal(daemon_, SIGCONT).ok());
}

}  // namespace
}  // namespace sp::block
