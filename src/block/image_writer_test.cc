// ImageWriter against real images served by qemu-nbd (read back with qemu-img and OpenImage),
// and against servers that hang.
#include "block/image_writer.h"

#include <gtest/gtest.h>

#include <chrono>

#include "block/block_source.h"
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

class ImageWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    image_ = dir_.path() + "/new.qcow2";
    ASSERT_TRUE(RunTool({"qemu-img", "create", "-q", "-f", "qcow2", image_, "8M"}).ok());
  }

  // The image's bytes, as qemu-img reads them.
  std::string Contents() {
    std::string raw = dir_.path() + "/contents.raw";
    (void)RemoveTree(raw);
    EXPECT_TRUE(RunTool({"qemu-img", "convert", "-f", "qcow2", "-O", "raw", image_, raw}).ok());
    return ReadFile(raw).value_or("");
  }

  testing::TempDir dir_;
  std::string image_;
};

TEST_F(ImageWriterTest, WritesLandWhereTheyWereAskedAndTheRestStaysUnallocated) {
  WriterOptions options;
  options.writes_in_flight = 2;  // more writes than slots: the oldest are retired on the way
  auto writer = OpenImageForWriting(image_, "qcow2", options);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ((*writer)->size(), 8 * kMiB);
  for (uint64_t mib : {uint64_t{1}, uint64_t{2}, uint64_t{5}}) {
    ASSERT_TRUE((*writer)->Write(std::string(kMiB, static_cast<char>('a' + mib)), mib * kMiB).ok());
  }
  ASSERT_TRUE((*writer)->Write("tail", 8 * kMiB - 4).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  writer->reset();  // qemu-nbd exits and lets go of the image

  std::string expected(8 * kMiB, '\0');
  for (uint64_t mib : {uint64_t{1}, uint64_t{2}, uint64_t{5}}) {
    expected.replace(mib * kMiB, kMiB, std::string(kMiB, static_cast<char>('a' + mib)));
  }
  expected.replace(8 * kMiB - 4, 4, "tail");
  EXPECT_TRUE(Contents() == expected);

  // Only what was written is allocated (restore keeps zero chunks as holes).
  auto source = OpenImage(image_, "qcow2");
  ASSERT_TRUE(source.ok()) << source.status();
  auto extents = (*source)->Extents(0, 8 * kMiB);
  ASSERT_TRUE(extents.ok()) << extents.status();
  uint64_t data_bytes = 0;
  for (const Extent& extent : *extents) {
    if (!extent.zero) data_bytes += extent.length;
  }
  EXPECT_LE(data_bytes, 4 * kMiB);  // 3 MiB and the cluster of the tail
  EXPECT_GE(data_bytes, 3 * kMiB);
}

TEST_F(ImageWriterTest, AWritePastTheEndIsRefusedBeforeItIsSent) {
  auto writer = OpenImageForWriting(image_, "qcow2");
  ASSERT_TRUE(writer.ok()) << writer.status();
  Status past = (*writer)->Write("xy", 8 * kMiB - 1);
  EXPECT_EQ(past.code(), absl::StatusCode::kOutOfRange) << past;
  EXPECT_NE(past.message().find("image " + image_), absl::string_view::npos) << past;
  EXPECT_TRUE((*writer)->Finish().ok());
}

TEST_F(ImageWriterTest, MissingWrongOrLockedImagesSayWhy) {
  EXPECT_EQ(OpenImageForWriting(dir_.path() + "/none.qcow2", "qcow2").status().code(),
            absl::StatusCode::kNotFound);
  std::string text = dir_.path() + "/text";
  ASSERT_TRUE(WriteFileAtomic(text, "not an image").ok());
  EXPECT_EQ(OpenImageForWriting(text, "qcow2").status().code(), absl::StatusCode::kInvalidArgument);
  // While one writer holds the image, a second one is refused (qemu's image lock).
  auto first = OpenImageForWriting(image_, "qcow2");
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = OpenImageForWriting(image_, "qcow2");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
}

TEST(HungWriterTest, ConnectGivesUpWithinTheDeadline) {
  testing::TempDir dir;
  // Accepts the connection and never says a word.
  testing::FakePeer peer(dir.path() + "/nbd.sock", "",
                         [](const std::string&) { return testing::PeerAction{}; });
  WriterOptions options;
  options.connect_timeout = Millis(300);
  auto start = std::chrono::steady_clock::now();
  auto writer = ConnectNbdUnixForWriting(peer.path(), "vda", options);
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kDeadlineExceeded) << writer.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_EQ(ConnectNbdUnixForWriting(dir.path() + "/none.sock", "vda").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sp::block
