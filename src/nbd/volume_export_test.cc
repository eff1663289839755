// VolumeExport in-process over a repository in memory: reads across chunks and holes from many
// threads, extents, the cache and readahead, damaged and missing chunks, a hung store.
#include "nbd/volume_export.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace sp::nbd {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kChunk = 1u << 20;
constexpr uint64_t kTail = 12345;  // the last chunk is short
// Chunk kinds: 'd' random data, 'z' zero. 10 full chunks and a short one.
constexpr char kLayout[] = "ddzzzdzddzd";

std::string Random(uint64_t seed, size_t size) {
  std::string data(size, '\0');
  std::mt19937_64 random(seed);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t value = random();
    std::memcpy(data.data() + i, &value, std::min<size_t>(8, size - i));
  }
  return data;
}

// Forwards to the repository's file system; opening the chunk file `stalled` blocks until
// Release(): a store that stops answering.
class StallingFileSystem : public FaultInjectionFileSystem {
 public:
  explicit StallingFileSystem(FileSystem* base) : FaultInjectionFileSystem(base) {}
  void Stall(const std::string& path) {
    absl::MutexLock lock(&mutex_);
    stalled_ = path;
  }
  void Release() {
    absl::MutexLock lock(&mutex_);
    stalled_.clear();
    released_.SignalAll();
  }
  StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    {
      absl::MutexLock lock(&mutex_);
      while (stalled_ == path) released_.Wait(&mutex_);
    }
    return FaultInjectionFileSystem::NewRandomAccessFile(path);
  }

 private:
  absl::Mutex mutex_;
  absl::CondVar released_;
  std::string stalled_ ABSL_GUARDED_BY(mutex_);
};

class VolumeExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo::InitOptions init;
    init.chunk_size = kChunk;
    init.fs = &mem_;
    ASSERT_TRUE(repo::Repository::Init("/repo", init).ok());
    auto repo = Open(&mem_);
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo::RecoveryPointRequest request;
    request.vm = {"uuid-web01", "web01"};
    auto writer = (*repo)->BeginRecoveryPoint(request);
    ASSERT_TRUE(writer.ok()) << writer.status();
    uint64_t size = (sizeof(kLayout) - 2) * uint64_t{kChunk} + kTail;
    auto volume = (*writer)->AddVolume("vda", size);
    ASSERT_TRUE(volume.ok());
    for (uint64_t i = 0; i < sizeof(kLayout) - 1; ++i) {
      size_t length = i + 2 == sizeof(kLayout) ? kTail : kChunk;
      if (kLayout[i] == 'z') {
        expected_ += std::string(length, '\0');
        ASSERT_TRUE((*volume)->PutZero(i).ok());
      } else {
        std::string data = Random(i, length);
        expected_ += data;
        ASSERT_TRUE((*volume)->PutChunk(i, std::move(data)).ok());
      }
    }
    auto committed = (*writer)->Commit({});
    ASSERT_TRUE(committed.ok()) << committed.status();
    point_ = committed->id;
  }

  static StatusOr<std::shared_ptr<repo::Repository>> Open(FileSystem* fs) {
    repo::OpenOptions options;
    options.fs = fs;
    SP_ASSIGN_OR_RETURN(auto repo, repo::Repository::Open("/repo", options));
    return std::shared_ptr<repo::Repository>(std::move(repo));
  }

  std::unique_ptr<VolumeExport> Export(FileSystem* fs, ExportOptions options = {}) {
    auto repo = Open(fs);
    EXPECT_TRUE(repo.ok()) << repo.status();
    if (!repo.ok()) return nullptr;
    auto opened = VolumeExport::Open(*repo, point_.substr(0, 12), "vda", options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? *std::move(opened) : nullptr;
  }

  // The file of chunk `index` of the point's volume.
  std::string ChunkFile(uint64_t index) {
    auto repo = Open(&mem_);
    auto manifest = (*repo)->GetRecoveryPoint(point_);
    auto index_file = (*repo)->LoadIndex(*manifest, manifest->volumes[0]);
    EXPECT_TRUE(index_file.ok()) << index_file.status();
    return (*repo)->ChunkPath(index_file->chunks[index]);
  }

  std::string Read(VolumeExport& exported, uint64_t offset, uint64_t length) {
    std::string buffer(length, '\x55');
    Status read = exported.Read(offset, length, buffer.data());
    EXPECT_TRUE(read.ok()) << read;
    return buffer;
  }

  MemFileSystem mem_;
  std::string point_;
  std::string expected_;
};

TEST_F(VolumeExportTest, ReadsMatchTheVolumeFromManyThreads) {
  auto exported = Export(&mem_);
  ASSERT_NE(exported, nullptr);
  EXPECT_EQ(exported->size(), expected_.size());
  EXPECT_EQ(exported->point_id(), point_);
  EXPECT_EQ(Read(*exported, 0, expected_.size()), expected_);
  // Unaligned ranges across chunk boundaries, data into holes and into the short last chunk.
  std::vector<std::thread> readers;
  for (int t = 0; t < 8; ++t) {
    readers.emplace_back([&, t] {
      std::mt19937_64 random(static_cast<uint64_t>(t));
      for (int i = 0; i < 50; ++i) {
        uint64_t offset = random() % expected_.size();
        uint64_t length = std::min<uint64_t>(random() % (3 * kChunk), expected_.size() - offset);
        std::string got = Read(*exported, offset, length);
        ASSERT_EQ(got, expected_.substr(offset, length)) << "at " << offset << "+" << length;
      }
    });
  }
  for (auto& reader : readers) reader.join();
  EXPECT_EQ(Read(*exported, expected_.size() - 10, 10), expected_.substr(expected_.size() - 10));
  char byte = 0;
  EXPECT_TRUE(absl::IsOutOfRange(exported->Read(expected_.size(), 1, &byte)));
}

TEST_F(VolumeExportTest, ExtentsAreTheZeroChunksMergedAndClipped) {
  auto exported = Export(&mem_);
  ASSERT_NE(exported, nullptr);
  std::vector<ExportExtent> all = exported->Extents(0, exported->size());
  // "dd zzz d z dd z d"
  std::vector<std::pair<uint64_t, bool>> runs;
  for (const auto& extent : all) runs.push_back({extent.length / kChunk, extent.zero});
  EXPECT_EQ(runs, (std::vector<std::pair<uint64_t, bool>>{
                      {2, false},
                      {3, true},
                      {1, false},
                      {1, true},
                      {2, false},
                      {1, true},
                      {0, false}}));  // the short last chunk: 12345 bytes
  EXPECT_EQ(all.back().length, kTail);
  std::vector<ExportExtent> middle = exported->Extents(kChunk + 100, 2 * kChunk);
  ASSERT_EQ(middle.size(), 2u);
  EXPECT_EQ(middle[0].offset, kChunk + 100);
  EXPECT_EQ(middle[0].length, kChunk - 100);
  EXPECT_FALSE(middle[0].zero);
  EXPECT_EQ(middle[1].offset, 2 * uint64_t{kChunk});
  EXPECT_EQ(middle[1].length, kChunk + 100);
  EXPECT_TRUE(middle[1].zero);
}

TEST_F(VolumeExportTest, CachesDecodedChunksAndReadsAheadOfASequentialReader) {
  ExportOptions options;
  options.cache_bytes = 4 * kChunk;
  options.workers = 1;
  options.readahead = 1;
  auto exported = Export(&mem_, options);
  ASSERT_NE(exported, nullptr);
  Read(*exported, 0, 4096);
  Read(*exported, 8192, 4096);
  ExportStats stats = exported->stats();
  EXPECT_EQ(stats.misses, 1u);
  EXPECT_EQ(stats.hits, 1u);
  EXPECT_EQ(stats.readahead, 1u);  // chunk 1 started ahead
  Read(*exported, kChunk, 4096);   // served by the readahead
  EXPECT_EQ(exported->stats().misses, 1u);
  Read(*exported, 0, expected_.size());
  EXPECT_LE(exported->stats().cached_chunks, 4u);
  EXPECT_EQ(exported->stats().failed, 0u);
}

TEST_F(VolumeExportTest, DamagedChunkFailsItsReadsNamingTheOffsetAndOthersStillRead) {
  Status corrupted = mem_.CorruptByte(ChunkFile(7), 100);
  ASSERT_TRUE(corrupted.ok()) << corrupted;
  ExportOptions options;
  options.readahead = 0;
  auto exported = Export(&mem_, options);
  ASSERT_NE(exported, nullptr);
  std::string buffer(kChunk, '\0');
  Status read = exported->Read(7 * uint64_t{kChunk} + 10, 100, buffer.data());
  EXPECT_TRUE(absl::IsDataLoss(read)) << read;
  EXPECT_THAT(read.message(), HasSubstr(point_));
  EXPECT_THAT(read.message(), HasSubstr("volume 'vda'"));
  EXPECT_THAT(read.message(), HasSubstr(absl::StrCat("offset ", 7 * uint64_t{kChunk})));
  // A request that only touches the damaged chunk in part fails whole.
  EXPECT_FALSE(exported->Read(6 * uint64_t{kChunk}, 2 * kChunk, buffer.data()).ok());
  // Failures are not cached: asked again, it fails again.
  EXPECT_FALSE(exported->Read(7 * uint64_t{kChunk}, 1, buffer.data()).ok());
  EXPECT_EQ(exported->stats().failed, 3u);  // each of the three requests read it anew
  EXPECT_EQ(Read(*exported, 8 * uint64_t{kChunk}, kChunk),
            expected_.substr(8 * uint64_t{kChunk}, kChunk));
  EXPECT_EQ(Read(*exported, 0, 5 * uint64_t{kChunk}), expected_.substr(0, 5 * uint64_t{kChunk}));
}

TEST_F(VolumeExportTest, MissingChunkIsDataLoss) {
  ASSERT_TRUE(mem_.DeleteFile(ChunkFile(0)).ok());
  auto exported = Export(&mem_);
  ASSERT_NE(exported, nullptr);
  char byte = 0;
  Status read = exported->Read(0, 1, &byte);
  EXPECT_TRUE(absl::IsDataLoss(read)) << read;
  EXPECT_THAT(read.message(), HasSubstr("missing"));
}

TEST_F(VolumeExportTest, HungStoreFailsTheRequestAtTheDeadline) {
  StallingFileSystem stalling(&mem_);
  ExportOptions options;
  options.read_timeout = Millis(300);
  options.readahead = 0;
  auto exported = Export(&stalling, options);
  ASSERT_NE(exported, nullptr);
  stalling.Stall(ChunkFile(1));
  char byte = 0;
  auto start = std::chrono::steady_clock::now();
  Status read = exported->Read(kChunk, 1, &byte);
  EXPECT_TRUE(absl::IsDeadlineExceeded(read)) << read;
  EXPECT_THAT(read.message(), HasSubstr(absl::StrCat("offset ", kChunk)));
  EXPECT_LT(MillisSince(start), 5'000);
  // Other chunks are still served while one read hangs.
  EXPECT_EQ(Read(*exported, 0, 100), expected_.substr(0, 100));
  EXPECT_EQ(Read(*exported, 3 * uint64_t{kChunk}, 100), std::string(100, '\0'));
  EXPECT_EQ(exported->stats().timeouts, 1u);
  // Once the store answers, so does the export.
  stalling.Release();
  EXPECT_EQ(Read(*exported, kChunk, 100), expected_.substr(kChunk, 100));
}

TEST_F(VolumeExportTest, UnknownPointOrVolumeIsNotFound) {
  auto repo = Open(&mem_);
  ASSERT_TRUE(repo.ok());
  EXPECT_TRUE(absl::IsNotFound(VolumeExport::Open(*repo, point_, "vdb", {}).status()));
  EXPECT_TRUE(absl::IsNotFound(VolumeExport::Open(*repo, "ffffffff", "vda", {}).status()));
}

}  // namespace
}  // namespace sp::nbd
