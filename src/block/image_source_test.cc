// OpenImage against real qcow2 images made with qemu-img / qemu-io, and a hung NBD server.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "block/block_source.h"
#include "block/stream.h"
#include "platform/files.h"
#include "platform/process.h"
#include "testing/fake_peer.h"
#include "testing/temp_dir.h"

namespace sp::block {
namespace {

constexpr uint64_t kMiB = 1 << 20;

Status RunTool(const std::vector<std::string>& argv) {
  return RunCommandOk(argv, Deadline::In(Millis(30'000))).status();
}

class ImageSourceTest : public ::testing::Test {
 protected:
  // A 16 MiB qcow2 with 0xab in [1 MiB, 3 MiB), 0xcd in [8 MiB + 4 KiB, 8 MiB + 8 KiB) and
  // explicit zeros in [12 MiB, 13 MiB); everything else is a hole.
  void SetUp() override {
    image_ = dir_.path() + "/disk.qcow2";
    ASSERT_TRUE(RunTool({"qemu-img", "create", "-q", "-f", "qcow2", image_, "16M"}).ok());
    ASSERT_TRUE(RunTool({"qemu-io", "-f", "qcow2", "-c", "write -P 0xab 1M 2M", "-c",
                         "write -P 0xcd 8196k 4k", "-c", "write -z 12M 1M", image_})
                    .ok());
  }

  std::string RawCopy() {
    std::string raw = dir_.path() + "/disk.raw";
    EXPECT_TRUE(RunTool({"qemu-img", "convert", "-f", "qcow2", "-O", "raw", image_, raw}).ok());
    auto bytes = ReadFile(raw);
    EXPECT_TRUE(bytes.ok());
    return bytes.ok() ? *bytes : "";
  }

  testing::TempDir dir_;
  std::string image_;
};

TEST_F(ImageSourceTest, SizeAndExtents) {
  auto source = OpenImage(image_, "qcow2");
  ASSERT_TRUE(source.ok()) << source.status();
  EXPECT_EQ((*source)->size(), 16 * kMiB);
  EXPECT_FALSE((*source)->has_dirty_bitmap());
  auto extents = (*source)->Extents(0, 16 * kMiB);
  ASSERT_TRUE(extents.ok()) << extents.status();
  uint64_t at = 0;
  uint64_t data_bytes = 0;
  for (const Extent& extent : *extents) {
    EXPECT_EQ(extent.offset, at);
    EXPECT_TRUE(extent.dirty);
    at += extent.length;
    if (!extent.zero) data_bytes += extent.length;
  }
  EXPECT_EQ(at, 16 * kMiB);
  // qcow2 clusters are 64 KiB: the 4 KiB write allocates one cluster.
  EXPECT_EQ(data_bytes, 2 * kMiB + 64 * 1024);
  auto middle = (*source)->Extents(2 * kMiB, kMiB);
  ASSERT_TRUE(middle.ok());
  ASSERT_EQ(middle->size(), 1u);
  EXPECT_EQ((*middle)[0].offset, 2 * kMiB);
  EXPECT_FALSE((*middle)[0].zero);
}

TEST_F(ImageSourceTest, ReadAtMatchesQemuImgConvert) {
  std::string raw = RawCopy();
  auto source = OpenImage(image_, "qcow2");
  ASSERT_TRUE(source.ok()) << source.status();
  std::string all(16 * kMiB, 'x');
  ASSERT_TRUE((*source)->ReadAt(0, all.size(), all.data()).ok());  // > 32 MiB? no: split anyway
  EXPECT_TRUE(all == raw);
  std::string piece(5000, 'x');
  ASSERT_TRUE((*source)->ReadAt(8 * kMiB + 4000, piece.size(), piece.data()).ok());
  EXPECT_EQ(piece, raw.substr(8 * kMiB + 4000, 5000));
  auto past_end = (*source)->ReadAt(16 * kMiB - 10, 20, piece.data());
  EXPECT_EQ(past_end.code(), absl::StatusCode::kOutOfRange);
}

TEST_F(ImageSourceTest, StreamVolumeMatchesRawCopy) {
  std::string raw = RawCopy();
  auto source = OpenImage(image_, "qcow2");
  ASSERT_TRUE(source.ok()) << source.status();
  std::string rebuilt(16 * kMiB, '\0');
  std::vector<ChunkKind> kinds;
  auto sink = [&](uint64_t index, ChunkKind kind, std::string data) {
    EXPECT_EQ(index, kinds.size());
    kinds.push_back(kind);
    if (kind == ChunkKind::kData) rebuilt.replace(index * kMiB, data.size(), data);
    return absl::OkStatus();
  };
  StreamOptions options;
  options.reads_in_flight = 4;
  auto stats = StreamVolume(**source, kMiB, options, sink);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_TRUE(rebuilt == raw);
  ASSERT_EQ(kinds.size(), 16u);
  for (uint64_t i = 0; i < 16; ++i) {
    bool data = i == 1 || i == 2 || i == 8;
    EXPECT_EQ(kinds[i], data ? ChunkKind::kData : ChunkKind::kZero) << "chunk " << i;
  }
  EXPECT_EQ(stats->bytes_read, 3 * kMiB);
  EXPECT_EQ(stats->bytes_zero, 13 * kMiB);
  EXPECT_EQ((*source)->reads_in_flight(), 0u);
}

TEST_F(ImageSourceTest, OddSizedVolumeAndChunkLargerThanRequests) {
  std::string image = dir_.path() + "/odd.qcow2";
  ASSERT_TRUE(RunTool({"qemu-img", "create", "-q", "-f", "qcow2", image, "70000k"}).ok());
  ASSERT_TRUE(RunTool({"qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 70000k", image}).ok());
  auto source = OpenImage(image, "qcow2");
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<uint64_t> lengths;
  auto stats =
      StreamVolume(**source, 64 * kMiB, {}, [&](uint64_t, ChunkKind kind, std::string data) {
        EXPECT_EQ(kind, ChunkKind::kData);
        EXPECT_EQ(data.find_first_not_of('\x11'), std::string::npos);
        lengths.push_back(data.size());
        return absl::OkStatus();
      });
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(lengths, (std::vector<uint64_t>{64 * kMiB, 70000 * 1024 - 64 * kMiB}));
}

TEST_F(ImageSourceTest, MissingImageIsNotFound) {
  auto source = OpenImage(dir_.path() + "/none.qcow2", "qcow2");
  EXPECT_EQ(source.status().code(), absl::StatusCode::kNotFound) << source.status();
}

TEST_F(ImageSourceTest, WrongFormatIsInvalidArgument) {
  std::string text = dir_.path() + "/text.img";
  ASSERT_TRUE(WriteFileAtomic(text, "not an image").ok());
  auto source = OpenImage(text, "qcow2");
  EXPECT_EQ(source.status().code(), absl::StatusCode::kInvalidArgument) << source.status();
}

TEST_F(ImageSourceTest, LockedImageIsFailedPrecondition) {
  // A writer that holds the image's lock, as a running QEMU does.
  std::string socket = dir_.path() + "/w.sock";
  auto holder =
      Spawn({"qemu-nbd", "--persistent", "--socket=" + socket, "-f", "qcow2", image_}, {});
  ASSERT_TRUE(holder.ok());
  absl::Cleanup stop = [&] {
    (void)SendSignal(*holder, SIGKILL);
    (void)WaitChild(*holder, Deadline::In(Millis(5000)));
  };
  Deadline ready = Deadline::In(Millis(10'000));
  while (!PathExists(socket) && !ready.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition
  }
  ASSERT_TRUE(PathExists(socket));
  auto source = OpenImage(image_, "qcow2");
  ASSERT_EQ(source.status().code(), absl::StatusCode::kFailedPrecondition) << source.status();
  EXPECT_NE(source.status().message().find("in use by another process"), std::string::npos);
}

TEST(HungServerTest, ConnectGivesUpWithinTheDeadline) {
  testing::TempDir dir;
  // Accepts the connection and never says a word.
  testing::FakePeer peer(dir.path() + "/nbd.sock", "",
                         [](const std::string&) { return testing::PeerAction{}; });
  ConnectOptions options;
  options.connect_timeout = Millis(300);
  auto start = std::chrono::steady_clock::now();
  auto source = ConnectNbdUnix(peer.path(), "vda", options);
  EXPECT_EQ(source.status().code(), absl::StatusCode::kDeadlineExceeded) << source.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

TEST(HungServerTest, NoSocketIsNotFound) {
  auto source = ConnectNbdUnix("/tmp/sp-no-such-dir/nbd.sock", "vda");
  EXPECT_EQ(source.status().code(), absl::StatusCode::kNotFound) << source.status();
}

}  // namespace
}  // namespace sp::block
