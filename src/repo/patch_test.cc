// Patches: incrementals that store only the changed sub-chunks of a chunk as overrides of the
// parent's chunk (composites in the index), on a real repository over the in-memory file system.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "gmock/gmock.h"
#include "repo/repository.h"

namespace sp::repo {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kChunk = 1u << 20;
constexpr uint32_t kSub = internal::kSubChunkSize;  // 16 sub-chunks to a chunk
// 8 full chunks and a 100 KiB tail (two sub-chunks, the second 36 KiB).
constexpr uint64_t kVolumeSize = 8ull * kChunk + 100 * 1024;

std::string RandomBytes(std::mt19937_64& random, size_t size) {
  std::string data(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t value = random();
    std::memcpy(data.data() + i, &value, std::min<size_t>(8, size - i));
  }
  return data;
}

uint64_t ChunkLength(uint64_t index) {
  return std::min<uint64_t>(kChunk, kVolumeSize - index * kChunk);
}
uint64_t SubLength(uint64_t index, uint32_t sub) {
  return std::min<uint64_t>(kSub, ChunkLength(index) - uint64_t{sub} * kSub);
}

class PatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions init;
    init.chunk_size = kChunk;
    init.fs = &mem_;
    ASSERT_TRUE(Repository::Init("/repo", init).ok());
    OpenOptions options;
    options.fs = &mem_;
    options.worker_threads = 2;
    options.timestamp_slack_micros = 0;
    repo_ = *Repository::Open("/repo", options);
  }

  static RecoveryPointRequest Request(const std::string& parent) {
    RecoveryPointRequest request;
    request.vm = VmIdentity{"uuid-web01", "web01"};
    request.parent_id = parent;
    return request;
  }

  StatusOr<std::string> WriteFull(const std::string& image) {
    SP_ASSIGN_OR_RETURN(auto writer, repo_->BeginRecoveryPoint(Request("")));
    SP_ASSIGN_OR_RETURN(VolumeWriter * volume, writer->AddVolume("vda", image.size()));
    for (uint64_t i = 0; i < volume->chunk_count(); ++i) {
      SP_RETURN_IF_ERROR(volume->PutChunk(i, image.substr(i * kChunk, kChunk)));
    }
    SP_ASSIGN_OR_RETURN(Manifest manifest, writer->Commit({}));
    return manifest.id;
  }

  // An incremental of `image` over `parent` after the sub-chunks `dirty` changed (chunk →
  // sub-chunks), given as the capture's stream would: a patch where it fits, else the whole
  // chunk; clean chunks reused.
  StatusOr<Manifest> WriteIncremental(const std::string& parent, const std::string& image,
                                      const std::map<uint64_t, std::set<uint32_t>>& dirty) {
    SP_ASSIGN_OR_RETURN(auto writer, repo_->BeginRecoveryPoint(Request(parent)));
    SP_ASSIGN_OR_RETURN(VolumeWriter * volume, writer->AddVolume("vda", image.size()));
    for (uint64_t i = 0; i < volume->chunk_count(); ++i) {
      auto changed = dirty.find(i);
      if (changed == dirty.end()) {
        SP_RETURN_IF_ERROR(volume->ReuseParent(i));
        continue;
      }
      std::vector<uint32_t> subs(changed->second.begin(), changed->second.end());
      if (!volume->PatchFits(i, subs)) {
        ++whole_chunks_;
        SP_RETURN_IF_ERROR(volume->PutChunk(i, image.substr(i * kChunk, kChunk)));
        continue;
      }
      std::vector<std::pair<uint32_t, std::string>> patch;
      for (uint32_t sub : subs) {
        patch.emplace_back(sub, image.substr(i * kChunk + uint64_t{sub} * kSub, SubLength(i, sub)));
      }
      SP_RETURN_IF_ERROR(volume->PutPatch(i, std::move(patch)));
    }
    return writer->Commit({});
  }

  std::string ReadAll(const std::string& id) {
    auto reader = repo_->OpenVolume(id, "vda");
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return "";
    std::string data((*reader)->size(), 'x');
    Status status = (*reader)->ReadAt(0, data.size(), data.data());
    EXPECT_TRUE(status.ok()) << status;
    return data;
  }

  std::string Streamed(const std::string& id) {
    auto stream = repo_->OpenStream(id, "vda");
    EXPECT_TRUE(stream.ok()) << stream.status();
    std::string all, chunk;
    while (stream.ok()) {
      auto more = (*stream)->Next(&chunk);
      EXPECT_TRUE(more.ok()) << more.status();
      if (!more.ok() || !*more) break;
      all += chunk;
    }
    return all;
  }

  internal::VolumeIndex IndexOf(const std::string& id) {
    Manifest manifest = *repo_->GetRecoveryPoint(id);
    return *repo_->LoadIndex(manifest, manifest.volumes[0]);
  }

  MemFileSystem mem_;
  std::unique_ptr<Repository> repo_;
  int whole_chunks_ = 0;
};

TEST_F(PatchTest, APatchStoresOnlyTheNewSubChunksAndReadsBackMerged) {
  std::mt19937_64 random(1);
  std::string image = RandomBytes(random, kVolumeSize);
  image.replace(2 * kChunk, kChunk, std::string(kChunk, '\0'));  // a zero chunk
  auto full = WriteFull(image);
  ASSERT_TRUE(full.ok()) << full.status();
  // Chunk 1: two sub-chunks rewritten; chunk 2 (zero): one written; chunk 8 (the tail): its short
  // second sub-chunk.
  image.replace(kChunk + 3 * kSub, kSub, RandomBytes(random, kSub));
  image.replace(kChunk + 9 * kSub, kSub, RandomBytes(random, kSub));
  image.replace(2 * kChunk + 15 * kSub, kSub, std::string(kSub, 'z'));
  image.replace(8 * kChunk + kSub, 36 * 1024, RandomBytes(random, 36 * 1024));
  auto point = WriteIncremental(*full, image, {{1, {3, 9}}, {2, {15}}, {8, {1}}});
  ASSERT_TRUE(point.ok()) << point.status();
  EXPECT_EQ(whole_chunks_, 0);
  EXPECT_EQ(point->volumes[0].new_chunks, 4u);  // four sub-chunk objects
  EXPECT_LT(point->volumes[0].new_stored_bytes, 4 * kSub + 4096);
  EXPECT_EQ(ReadAll(point->id), image);
  EXPECT_EQ(Streamed(point->id), image);

  internal::VolumeIndex index = IndexOf(point->id);
  EXPECT_EQ(index.version, 2u);
  EXPECT_EQ(index.sub_chunk_size, kSub);
  EXPECT_EQ(index.overrides.size(), 4u);
  EXPECT_EQ(index.chunks[1], IndexOf(*full).chunks[1]);  // the parent's chunk is the base
  auto reader = *repo_->OpenVolume(point->id, "vda");
  EXPECT_FALSE(reader->IsZeroChunk(2));  // a zero base with an override
  EXPECT_TRUE(index.chunks[2] == kZeroDigest);
  // Reads within and across a composite's overrides.
  std::string piece(kSub + 10, 'x');
  ASSERT_TRUE(reader->ReadAt(kChunk + 3 * kSub - 5, piece.size(), piece.data()).ok());
  EXPECT_EQ(piece, image.substr(kChunk + 3 * kSub - 5, piece.size()));
  EXPECT_TRUE(repo_->Verify("")->ok());
}

TEST_F(PatchTest, PatchesStayBelowAQuarterOfTheChunkWithTheParentsOverrides) {
  std::mt19937_64 random(2);
  std::string image = RandomBytes(random, kVolumeSize);
  auto full = WriteFull(image);
  ASSERT_TRUE(full.ok());
  auto writer = *repo_->BeginRecoveryPoint(Request(*full));
  VolumeWriter* volume = *writer->AddVolume("vda", image.size());
  EXPECT_EQ(volume->sub_chunk_size(), kSub);
  EXPECT_TRUE(volume->PatchFits(0, {0, 1, 2, 15}));
  EXPECT_FALSE(volume->PatchFits(0, {0, 1, 2, 3, 4}));  // 5 of 16
  EXPECT_FALSE(volume->PatchFits(0, {2, 1}));           // not in order
  EXPECT_FALSE(volume->PatchFits(0, {16}));             // no such sub-chunk
  EXPECT_FALSE(volume->PatchFits(0, {}));
  EXPECT_TRUE(volume->PatchFits(8, {1}));      // the tail: 2 sub-chunks, one may change
  EXPECT_FALSE(volume->PatchFits(8, {0, 1}));  // but not both
  EXPECT_FALSE(volume->PatchFits(9, {0}));     // past the end
  Status wrong_size = volume->PutPatch(0, {{0, std::string(100, 'a')}});
  EXPECT_TRUE(absl::IsInvalidArgument(wrong_size)) << wrong_size;
  Status too_many = volume->PutPatch(0, {{0, std::string(kSub, 'a')},
                                         {1, std::string(kSub, 'a')},
                                         {2, std::string(kSub, 'a')},
                                         {3, std::string(kSub, 'a')},
                                         {4, std::string(kSub, 'a')}});
  EXPECT_TRUE(absl::IsFailedPrecondition(too_many)) << too_many;
  writer->Abort();

  // A chunk that has 3 overrides in the parent takes one more new sub-chunk, or a rewrite of
  // them, but not two more.
  image.replace(4 * kSub, 3 * kSub, RandomBytes(random, 3 * kSub));
  auto first = WriteIncremental(*full, image, {{0, {4, 5, 6}}});
  ASSERT_TRUE(first.ok()) << first.status();
  writer = *repo_->BeginRecoveryPoint(Request(first->id));
  volume = *writer->AddVolume("vda", image.size());
  EXPECT_TRUE(volume->PatchFits(0, {7}));
  EXPECT_TRUE(volume->PatchFits(0, {4, 5, 6, 7}));
  EXPECT_FALSE(volume->PatchFits(0, {7, 8}));
  // A full point takes no patches.
  writer.reset();  // aborted
  auto none = *repo_->BeginRecoveryPoint(Request(""));
  VolumeWriter* fresh = *none->AddVolume("vda", image.size());
  EXPECT_EQ(fresh->sub_chunk_size(), 0u);
  EXPECT_FALSE(fresh->PatchFits(0, {1}));
}

TEST_F(PatchTest, ReuseOfACompositeKeepsItsOverridesAndZeroPatchesNeedNoObject) {
  std::mt19937_64 random(3);
  std::string image(kVolumeSize, '\0');
  image.replace(0, kChunk, RandomBytes(random, kChunk));
  auto full = WriteFull(image);
  ASSERT_TRUE(full.ok());
  image.replace(5 * kSub, kSub, RandomBytes(random, kSub));  // chunk 0: data over data
  image.replace(kChunk, kSub, RandomBytes(random, kSub));    // chunk 1: data over a zero chunk
  auto patched = WriteIncremental(*full, image, {{0, {5}}, {1, {0}}});
  ASSERT_TRUE(patched.ok()) << patched.status();
  // Nothing changed: every chunk reused, composites included.
  auto same = WriteIncremental(patched->id, image, {});
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->volumes[0].new_chunks, 0u);
  EXPECT_EQ(IndexOf(same->id).overrides, IndexOf(patched->id).overrides);
  EXPECT_EQ(ReadAll(same->id), image);
  // Chunk 1's only data discarded again: zeros written over a zero base make a zero chunk; a
  // zero sub-chunk over data is an override without an object.
  image.replace(kChunk, kSub, std::string(kSub, '\0'));
  image.replace(7 * kSub, kSub, std::string(kSub, '\0'));
  auto discarded = WriteIncremental(same->id, image, {{0, {7}}, {1, {0}}});
  ASSERT_TRUE(discarded.ok()) << discarded.status();
  EXPECT_EQ(discarded->volumes[0].new_chunks, 0u);
  internal::VolumeIndex index = IndexOf(discarded->id);
  EXPECT_TRUE(index.IsZero(1));
  EXPECT_EQ(index.overrides.size(), 2u);  // chunk 0: sub-chunks 5 and 7 (zero)
  EXPECT_TRUE(index.overrides[1].id == kZeroDigest);
  EXPECT_EQ(ReadAll(discarded->id), image);
  EXPECT_EQ(Streamed(discarded->id), image);
  EXPECT_TRUE(repo_->Verify("")->ok());
}

// 30 incrementals, each after a few random sub-chunks changed: every point reads back as its
// image, verify is clean, the usage counts the sub-chunk objects, and gc frees the replaced
// sub-chunks once no point refers to them.
TEST_F(PatchTest, AChainOfThirtyIncrementalsReadsBackAndGcFreesWhatNoPointUses) {
  std::mt19937_64 random(4);
  std::string image = RandomBytes(random, kVolumeSize);
  auto full = WriteFull(image);
  ASSERT_TRUE(full.ok());
  std::vector<std::pair<std::string, std::string>> points = {{*full, image}};
  uint64_t patched = 0;
  for (int round = 0; round < 30; ++round) {
    std::map<uint64_t, std::set<uint32_t>> dirty;
    for (int write = 0; write < 3; ++write) {
      uint64_t chunk = random() % 9;
      uint32_t sub = static_cast<uint32_t>(random() % (chunk == 8 ? 2 : 16));
      image.replace(chunk * kChunk + uint64_t{sub} * kSub, SubLength(chunk, sub),
                    RandomBytes(random, SubLength(chunk, sub)));
      dirty[chunk].insert(sub);
    }
    auto point = WriteIncremental(points.back().first, image, dirty);
    ASSERT_TRUE(point.ok()) << point.status();
    internal::VolumeIndex index = IndexOf(point->id);
    for (uint64_t i = 0; i < index.chunks.size(); ++i) {
      auto [first, last] = index.OverridesOf(i);
      EXPECT_LE(last - first, std::max<size_t>(1, index.SubChunkCount(i) / 4)) << i;
    }
    if (!index.overrides.empty()) ++patched;
    points.emplace_back(point->id, image);
  }
  EXPECT_GT(whole_chunks_, 0);  // some chunks passed the threshold and were stored whole
  EXPECT_GT(patched, 25u);
  for (const auto& [id, expected] : points) {
    EXPECT_EQ(ReadAll(id), expected) << id;
  }
  EXPECT_EQ(Streamed(points.back().first), image);
  auto report = repo_->Verify("");
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());

  // The usage is every distinct object of the points (chunks and sub-chunks) plus their files.
  auto usage = repo_->Usage("uuid-web01");
  ASSERT_TRUE(usage.ok());
  auto stats = repo_->Stats();
  EXPECT_GE(usage->stored_bytes, stats->stored_bytes);

  // Keep only the last point: gc keeps what it refers to and nothing else.
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    ASSERT_TRUE(repo_->DeleteRecoveryPoint(points[i].first).ok());
  }
  auto gc = repo_->CollectGarbage();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_GT(gc->chunks_deleted, 0u);
  internal::VolumeIndex last = IndexOf(points.back().first);
  std::set<Digest> referenced;
  for (const Digest& id : last.chunks) {
    if (id != kZeroDigest) referenced.insert(id);
  }
  for (const auto& entry : last.overrides) {
    if (entry.id != kZeroDigest) referenced.insert(entry.id);
  }
  EXPECT_EQ(gc->chunks_in_use, referenced.size());
  EXPECT_EQ(repo_->Stats()->chunk_count, referenced.size());
  EXPECT_EQ(ReadAll(points.back().first), image);
  EXPECT_TRUE(repo_->Verify("")->ok());
}

TEST_F(PatchTest, ADamagedSubChunkIsNamedByVerifyAndReads) {
  std::mt19937_64 random(5);
  std::string image = RandomBytes(random, kVolumeSize);
  auto full = WriteFull(image);
  ASSERT_TRUE(full.ok());
  image.replace(3 * kChunk + 2 * kSub, kSub, RandomBytes(random, kSub));
  auto point = WriteIncremental(*full, image, {{3, {2}}});
  ASSERT_TRUE(point.ok());
  internal::VolumeIndex index = IndexOf(point->id);
  ASSERT_EQ(index.overrides.size(), 1u);
  ASSERT_TRUE(mem_.CorruptByte(repo_->ChunkPath(index.overrides[0].id), 100).ok());
  auto report = *repo_->Verify(point->id);
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].offset, 3u * kChunk + 2 * kSub);
  EXPECT_EQ(report.problems[0].chunk_id, DigestHex(index.overrides[0].id));
  auto reader = *repo_->OpenVolume(point->id, "vda");
  std::string buffer(10, 'x');
  Status read = reader->ReadAt(3 * kChunk, 10, buffer.data());  // the base part of the chunk
  ASSERT_TRUE(absl::IsDataLoss(read)) << read;
  EXPECT_THAT(read.message(), HasSubstr("offset 3276800"));
  // The parent does not use the sub-chunk and stays whole.
  EXPECT_TRUE(repo_->Verify(*full)->ok());
}

TEST_F(PatchTest, AnIncrementalOverAGoneParentObjectFailsAndAsksForAFull) {
  std::mt19937_64 random(6);
  std::string image = RandomBytes(random, kVolumeSize);
  auto full = WriteFull(image);
  ASSERT_TRUE(full.ok());
  image.replace(kSub, kSub, RandomBytes(random, kSub));
  auto point = WriteIncremental(*full, image, {{0, {1}}});
  ASSERT_TRUE(point.ok());
  ASSERT_TRUE(mem_.DeleteFile(repo_->ChunkPath(IndexOf(point->id).overrides[0].id)).ok());
  auto next = WriteIncremental(point->id, image, {{0, {2}}});
  ASSERT_FALSE(next.ok());
  EXPECT_THAT(next.status().message(), HasSubstr("take a full capture"));
}

}  // namespace
}  // namespace sp::repo
