#include "block/stream.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "testing/fake_block_source.h"

namespace sp::block {
namespace {

constexpr uint32_t kChunk = 64 * 1024;

using FakeSource = testing::FakeBlockSource;

struct Received {
  std::vector<uint64_t> order;
  std::map<uint64_t, std::pair<ChunkKind, std::string>> chunks;
};

ChunkSink Collect(Received& received) {
  return [&received](uint64_t index, ChunkKind kind, std::string data) {
    received.order.push_back(index);
    received.chunks[index] = {kind, std::move(data)};
    return absl::OkStatus();
  };
}

// 5.5 chunks: chunk 0 data, 1 hole, 2 data but all zero bytes, 3 data (clean in the bitmap),
// 4 data (dirty), 5 short data.
FakeSource MakeVolume(bool bitmap) {
  std::string bytes(5 * kChunk + kChunk / 2, '\0');
  std::fill_n(bytes.begin(), kChunk, 'a');
  std::fill_n(bytes.begin() + 3 * kChunk, kChunk, 'c');
  std::fill_n(bytes.begin() + 4 * kChunk + 100, 10, 'd');
  std::fill_n(bytes.begin() + 5 * kChunk, kChunk / 2, 'e');
  std::vector<Extent> extents = {
      {0, kChunk, false, true},
      {kChunk, kChunk, true, false},
      {2 * kChunk, kChunk, false, true},
      {3 * kChunk, kChunk, false, !bitmap},
      {4 * kChunk, 4096, false, false},
      {4 * kChunk + 4096, 4096, false, true},
      {4 * kChunk + 8192, kChunk + kChunk / 2 - 8192, false, false},
  };
  FakeSource source(std::move(bytes), std::move(extents), bitmap);
  source.max_read_size_ = 16 * 1024;  // forces split reads
  return source;
}

TEST(StreamVolumeTest, FullStreamClassifiesChunksInIndexOrder) {
  FakeSource source = MakeVolume(false);
  Received received;
  auto stats = StreamVolume(source, kChunk, {}, Collect(received));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(received.order, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(received.chunks[0].first, ChunkKind::kData);
  EXPECT_EQ(received.chunks[0].second, std::string(kChunk, 'a'));
  EXPECT_EQ(received.chunks[1].first, ChunkKind::kZero);
  EXPECT_EQ(received.chunks[1].second, "");
  EXPECT_EQ(received.chunks[2].first, ChunkKind::kZero);  // read, found all zero
  EXPECT_EQ(received.chunks[3].first, ChunkKind::kData);
  EXPECT_EQ(received.chunks[5].first, ChunkKind::kData);
  EXPECT_EQ(received.chunks[5].second, std::string(kChunk / 2, 'e'));
  EXPECT_EQ(stats->chunk_count, 6u);
  EXPECT_EQ(stats->data_chunks, 4u);
  EXPECT_EQ(stats->zero_chunks, 2u);
  EXPECT_EQ(stats->bytes_read, 4 * kChunk + kChunk / 2);
  EXPECT_EQ(stats->bytes_zero, 2u * kChunk);
  EXPECT_EQ(source.bytes_read_, stats->bytes_read);
}

TEST(StreamVolumeTest, IncrementalReusesCleanChunks) {
  FakeSource source = MakeVolume(true);
  Received received;
  StreamOptions options;
  options.incremental = true;
  auto stats = StreamVolume(source, kChunk, options, Collect(received));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(received.chunks[0].first, ChunkKind::kData);
  EXPECT_EQ(received.chunks[1].first, ChunkKind::kZero);
  EXPECT_EQ(received.chunks[3].first, ChunkKind::kReuseParent);
  EXPECT_EQ(received.chunks[4].first, ChunkKind::kData);
  EXPECT_EQ(received.chunks[4].second.substr(100, 10), std::string(10, 'd'));
  EXPECT_EQ(received.chunks[5].first, ChunkKind::kReuseParent);
  EXPECT_EQ(stats->reused_chunks, 2u);
  EXPECT_EQ(stats->bytes_reused, kChunk + kChunk / 2);
}

TEST(StreamVolumeTest, BytesToReadIsWhatTheStreamReads) {
  for (bool incremental : {false, true}) {
    FakeSource source = MakeVolume(incremental);
    StreamOptions options;
    options.incremental = incremental;
    auto expected = BytesToRead(source, kChunk, options);
    ASSERT_TRUE(expected.ok()) << expected.status();
    Received received;
    auto stats = StreamVolume(source, kChunk, options, Collect(received));
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_EQ(*expected, stats->bytes_read) << "incremental=" << incremental;
  }
}

// Patches of 4 KiB sub-chunks: chunk 0 (dirty as a whole) is too changed to be one; chunk 4
// has one dirty sub-chunk (1); a chunk of two adjacent dirty sub-chunks and a discarded one.
struct PatchRun {
  Received received;
  std::map<uint64_t, SubChunks> patches;
  std::vector<std::pair<uint64_t, uint64_t>> reads;
  StatusOr<StreamStats> stats = absl::UnknownError("not run");
  uint64_t expected_bytes = 0;
};

PatchRun StreamWithPatches() {
  constexpr uint32_t kSub = 4096;
  FakeSource source = MakeVolume(true);
  // Chunk 3 (clean so far): sub-chunks 2 and 3 dirty with data, 9 dirty and discarded.
  source.bytes_.replace(3 * kChunk + 2 * kSub, 2 * kSub, std::string(2 * kSub, 'n'));
  source.bytes_.replace(3 * kChunk + 9 * kSub, kSub, std::string(kSub, '\0'));
  source.extents_[3] = {3 * kChunk, 2 * kSub, false, false};
  source.extents_.insert(source.extents_.begin() + 4,
                         {{3 * kChunk + 2 * kSub, 2 * kSub, false, true},
                          {3 * kChunk + 4 * kSub, 5 * kSub, false, false},
                          {3 * kChunk + 9 * kSub, kSub, true, true},
                          {3 * kChunk + 10 * kSub, 6 * kSub, false, false}});
  PatchRun run;
  StreamOptions options;
  options.incremental = true;
  options.patches.sub_chunk_size = kSub;
  options.patches.fits = [](uint64_t, const std::vector<uint32_t>& dirty) {
    return dirty.size() <= 4;
  };
  options.patches.sink = [&run](uint64_t index, SubChunks subs) {
    run.received.order.push_back(index);
    run.patches[index] = std::move(subs);
    return absl::OkStatus();
  };
  source.on_read_ = [&run](uint64_t offset, uint64_t length) {
    run.reads.emplace_back(offset, length);
  };
  run.expected_bytes = *BytesToRead(source, kChunk, options);
  run.stats = StreamVolume(source, kChunk, options, Collect(run.received));
  return run;
}

TEST(StreamVolumeTest, PatchesReadOnlyTheDirtySubChunks) {
  PatchRun run = StreamWithPatches();
  ASSERT_TRUE(run.stats.ok()) << run.stats.status();
  EXPECT_EQ(run.received.order, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(run.received.chunks[0].first, ChunkKind::kData);  // all 16 sub-chunks dirty
  ASSERT_EQ(run.patches.count(4), 1u);
  ASSERT_EQ(run.patches[4].size(), 1u);
  EXPECT_EQ(run.patches[4][0].first, 1u);
  EXPECT_EQ(run.patches[4][0].second, std::string(4096, '\0'));  // the 'd's are in sub-chunk 0
  ASSERT_EQ(run.patches.count(3), 1u);
  ASSERT_EQ(run.patches[3].size(), 3u);
  EXPECT_EQ(run.patches[3][0], std::make_pair(2u, std::string(4096, 'n')));
  EXPECT_EQ(run.patches[3][1], std::make_pair(3u, std::string(4096, 'n')));
  EXPECT_EQ(run.patches[3][2], std::make_pair(9u, std::string(4096, '\0')));
  EXPECT_EQ(run.received.chunks[5].first, ChunkKind::kReuseParent);
  EXPECT_EQ(run.stats->patched_chunks, 2u);
  // Chunks 0 and 2 whole; one read for chunk 3's adjacent sub-chunks, none for the discarded one;
  // one for chunk 4's.
  EXPECT_EQ(run.stats->bytes_read, 2 * kChunk + 3 * 4096);
  EXPECT_EQ(run.expected_bytes, run.stats->bytes_read);
  std::vector<std::pair<uint64_t, uint64_t>> patch_reads;
  for (const auto& read : run.reads) {
    if (read.first >= 3 * kChunk && read.first < 5 * kChunk) patch_reads.push_back(read);
  }
  EXPECT_EQ(patch_reads, (std::vector<std::pair<uint64_t, uint64_t>>{
                             {3 * kChunk + 2 * 4096, 2 * 4096}, {4 * kChunk + 4096, 4096}}));
}

TEST(StreamVolumeTest, PatchesNeedAFitsTestAndASink) {
  FakeSource source = MakeVolume(true);
  Received received;
  StreamOptions options;
  options.incremental = true;
  options.patches.sub_chunk_size = 4096;
  auto stats = StreamVolume(source, kChunk, options, Collect(received));
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StreamVolumeTest, ReadErrorNamesOffsetAndStops) {
  FakeSource source = MakeVolume(false);
  source.fail_at_ = 3 * kChunk + 5;
  Received received;
  auto stats = StreamVolume(source, kChunk, {}, Collect(received));
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find("offset 196608"), std::string::npos) << stats.status();
}

TEST(StreamVolumeTest, SinkErrorStopsTheStream) {
  FakeSource source = MakeVolume(false);
  int calls = 0;
  auto stats = StreamVolume(source, kChunk, {}, [&](uint64_t, ChunkKind, std::string) {
    return ++calls == 2 ? absl::ResourceExhaustedError("full") : absl::OkStatus();
  });
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(calls, 2);
}

TEST(StreamVolumeTest, ProgressAfterEveryChunk) {
  FakeSource source = MakeVolume(false);
  std::vector<uint64_t> done;
  auto stats = StreamVolume(
      source, kChunk, {}, [](uint64_t, ChunkKind, std::string) { return absl::OkStatus(); },
      [&](const StreamStats& progress) { done.push_back(progress.chunks_done); });
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(done, (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
}

TEST(StreamVolumeTest, IsAllZero) {
  std::string bytes(1000, '\0');
  EXPECT_TRUE(IsAllZero(bytes.data(), bytes.size()));
  EXPECT_TRUE(IsAllZero(bytes.data(), 0));
  bytes[999] = 1;
  EXPECT_FALSE(IsAllZero(bytes.data(), bytes.size()));
  bytes[999] = 0;
  bytes[0] = 1;
  EXPECT_FALSE(IsAllZero(bytes.data(), bytes.size()));
}

}  // namespace
}  // namespace sp::block
