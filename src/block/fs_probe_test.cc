// ProbeExt4 on volumes made by mke2fs and sfdisk: bare, MBR (primary and logical), GPT.
#include "block/fs_probe.h"

#include <gtest/gtest.h>

#include "platform/files.h"
#include "platform/process.h"
#include "testing/temp_dir.h"

namespace sp::block {
namespace {

constexpr uint64_t kSector = 512;
constexpr const char* kUuid = "01234567-89ab-cdef-0123-456789abcdef";

Status RunTool(const std::vector<std::string>& argv) {
  return RunCommandOk(argv, Deadline::In(Millis(30'000))).status();
}

// Runs sfdisk with `script` on `image`.
Status Partition(const std::string& dir, const std::string& image, const std::string& script) {
  std::string script_path = dir + "/layout.sfdisk";
  SP_RETURN_IF_ERROR(WriteFileAtomic(script_path, script));
  return RunTool({"sh", "-c", "sfdisk -q \"$0\" < \"$1\"", image, script_path});
}

// mke2fs -t ext4 of `size` inside `image` at byte `offset`.
Status MakeExt4(const std::string& image, uint64_t offset, const std::string& size,
                const std::string& label) {
  return RunTool({"mke2fs", "-q", "-F", "-t", "ext4", "-L", label, "-U", kUuid, "-E",
                  absl::StrCat("offset=", offset), image, size});
}

StatusOr<std::vector<Ext4Info>> ProbeBytes(const std::string& bytes) {
  return ProbeExt4(bytes.size(), [&bytes](uint64_t offset, uint64_t length, char* buffer) {
    bytes.copy(buffer, length, offset);
    return absl::OkStatus();
  });
}

void SetNeedsRecovery(std::string& bytes, uint64_t fs_offset) {
  size_t at = fs_offset + kExt4SuperblockOffset + 0x60;
  bytes[at] = static_cast<char>(static_cast<unsigned char>(bytes[at]) | kExt4IncompatRecover);
}

TEST(FsProbeTest, BareFilesystemCleanAndNeedingRecovery) {
  testing::TempDir dir;
  std::string image = dir.path() + "/bare.raw";
  ASSERT_TRUE(MakeExt4(image, 0, "8M", "rootfs").ok());
  auto bytes = ReadFile(image);
  ASSERT_TRUE(bytes.ok());
  auto found = ProbeBytes(*bytes);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  const Ext4Info& fs = (*found)[0];
  EXPECT_EQ(fs.offset, 0u);
  EXPECT_EQ(fs.where, "whole volume");
  EXPECT_EQ(fs.kind, "ext4");
  EXPECT_EQ(fs.label, "rootfs");
  EXPECT_EQ(fs.uuid, kUuid);
  EXPECT_EQ(fs.size_bytes, 8u << 20);
  EXPECT_FALSE(fs.needs_recovery);

  SetNeedsRecovery(*bytes, 0);
  auto dirty = ProbeBytes(*bytes);
  ASSERT_TRUE(dirty.ok());
  ASSERT_EQ(dirty->size(), 1u);
  EXPECT_TRUE((*dirty)[0].needs_recovery);
}

TEST(FsProbeTest, MbrPrimaryAndLogicalPartitions) {
  testing::TempDir dir;
  std::string image = dir.path() + "/mbr.raw";
  ASSERT_TRUE(RunTool({"truncate", "-s", "20M", image}).ok());
  ASSERT_TRUE(Partition(dir.path(), image,
                        "label: dos\n"
                        "start=2048, size=12288, type=83\n"
                        "start=16384, type=5\n"
                        "start=18432, size=8192, type=83\n"
                        "start=28672, size=8192, type=83\n")
                  .ok());
  ASSERT_TRUE(MakeExt4(image, 2048 * kSector, "6M", "first").ok());
  ASSERT_TRUE(MakeExt4(image, 28672 * kSector, "4M", "sixth").ok());
  auto bytes = ReadFile(image);
  ASSERT_TRUE(bytes.ok());
  SetNeedsRecovery(*bytes, 28672 * kSector);
  auto found = ProbeBytes(*bytes);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].where, "MBR partition 1");
  EXPECT_EQ((*found)[0].offset, 2048 * kSector);
  EXPECT_EQ((*found)[0].label, "first");
  EXPECT_FALSE((*found)[0].needs_recovery);
  EXPECT_EQ((*found)[1].where, "MBR logical partition 6");
  EXPECT_EQ((*found)[1].offset, 28672 * kSector);
  EXPECT_EQ((*found)[1].label, "sixth");
  EXPECT_TRUE((*found)[1].needs_recovery);
}

TEST(FsProbeTest, GptPartitionsThroughABlockSource) {
  testing::TempDir dir;
  std::string image = dir.path() + "/gpt.raw";
  ASSERT_TRUE(RunTool({"truncate", "-s", "24M", image}).ok());
  ASSERT_TRUE(Partition(dir.path(), image,
                        "label: gpt\n"
                        "start=2048, size=4096, name=empty\n"
                        "start=8192, size=16384, name=data\n")
                  .ok());
  ASSERT_TRUE(MakeExt4(image, 8192 * kSector, "8M", "gptdata").ok());
  auto source = OpenImage(image, "raw");
  ASSERT_TRUE(source.ok()) << source.status();
  auto found = ProbeExt4(**source);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_EQ(found->size(), 1u);
  EXPECT_EQ((*found)[0].where, "GPT partition 2");
  EXPECT_EQ((*found)[0].offset, 8192 * kSector);
  EXPECT_EQ((*found)[0].label, "gptdata");
  EXPECT_FALSE((*found)[0].needs_recovery);
}

TEST(FsProbeTest, NothingInZerosOrGarbage) {
  auto zeros = ProbeBytes(std::string(1 << 20, '\0'));
  ASSERT_TRUE(zeros.ok());
  EXPECT_TRUE(zeros->empty());
  auto tiny = ProbeBytes("short");
  ASSERT_TRUE(tiny.ok());
  EXPECT_TRUE(tiny->empty());
  // A boot signature with partitions pointing past the end, and a looping extended chain.
  std::string mbr(4096, '\0');
  mbr[510] = '\x55';
  mbr[511] = '\xAA';
  mbr[446 + 4] = '\x83';
  mbr[446 + 8] = '\x7f';
  mbr[462 + 4] = '\x05';
  mbr[462 + 8] = '\x01';
  std::string ebr = mbr.substr(0, 512);
  ebr[462 + 4] = '\x05';
  ebr[462 + 8] = '\x01';  // LBA 1 → LBA 2 → LBA 2 ...
  mbr.replace(512, 512, ebr);
  mbr.replace(1024, 512, ebr);
  auto garbage = ProbeBytes(mbr);
  ASSERT_TRUE(garbage.ok());
  EXPECT_TRUE(garbage->empty());
}

// The fuzz corpus doubles as a check of hand-made tables (no tool makes them this small).
TEST(FsProbeTest, FuzzCorpusInputs) {
  const std::string corpus = std::string(STILLPOINT_SOURCE_DIR) + "/tests/fuzz/corpus/fs_probe/";
  struct Expected {
    const char* file;
    std::vector<std::pair<std::string, bool>> filesystems;  // where, needs_recovery
  };
  const std::vector<Expected> cases = {
      {"bare_clean", {{"whole volume", false}}},
      {"bare_recover", {{"whole volume", true}}},
      {"mbr_primary_logical", {{"MBR partition 1", false}, {"MBR logical partition 5", true}}},
      {"gpt_partition2", {{"GPT partition 2", false}}},
      {"mbr_loop", {}},
  };
  for (const Expected& expected : cases) {
    auto bytes = ReadFile(corpus + expected.file);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto found = ProbeBytes(*bytes);
    ASSERT_TRUE(found.ok()) << found.status();
    std::vector<std::pair<std::string, bool>> got;
    for (const Ext4Info& fs : *found) got.emplace_back(fs.where, fs.needs_recovery);
    EXPECT_EQ(got, expected.filesystems) << expected.file;
  }
}

TEST(FsProbeTest, ReadErrorsAreReturned) {
  auto result =
      ProbeExt4(1 << 20, [](uint64_t, uint64_t, char*) { return absl::UnavailableError("gone"); });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sp::block
