#include "repo/repository.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "platform/files.h"
#include "repo/internal/layout.h"
#include "testing/scoped_umask.h"
#include "testing/temp_dir.h"

namespace sp::repo {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kChunk = 1u << 20;

// The id of the point a commit wrote.
StatusOr<std::string> Id(const StatusOr<Manifest>& committed) {
  if (!committed.ok()) return committed.status();
  return committed->id;
}

// Chunk contents: random (incompressible), text-like (compressible) or zeros.
std::string MakeChunk(uint64_t seed, size_t size, int kind) {
  std::string data(size, '\0');
  if (kind == 2) return data;
  std::mt19937_64 random(seed);
  for (size_t i = 0; i < size; i += 8) {
    uint64_t value = random();
    if (kind == 1) value &= 0x0707070707070707ull;
    std::memcpy(data.data() + i, &value, std::min<size_t>(8, size - i));
  }
  return data;
}

// A volume of 4 full chunks and a 1000-byte tail: random, compressible, zero, random, random.
std::string MakeVolume(uint64_t seed) {
  std::string volume;
  const int kinds[] = {0, 1, 2, 0, 0};
  for (int i = 0; i < 5; ++i) {
    volume += MakeChunk(seed * 100 + static_cast<uint64_t>(i), i == 4 ? 1000 : kChunk, kinds[i]);
  }
  return volume;
}

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    InitOptions init;
    init.chunk_size = kChunk;
    init.fs = &mem_;
    ASSERT_TRUE(Repository::Init("/repo", init).ok());
    Reopen();
  }
  void Reopen(FileSystem* fs = nullptr) {
    repo_.reset();
    OpenOptions options;
    options.fs = fs != nullptr ? fs : &mem_;
    options.worker_threads = 2;
    options.timestamp_slack_micros = 0;
    auto repo = Repository::Open("/repo", options);
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
  }
  static RecoveryPointRequest Request(const std::string& vm, const std::string& parent = "") {
    RecoveryPointRequest request;
    request.vm = VmIdentity{"uuid-" + vm, vm};
    request.parent_id = parent;
    return request;
  }
  // Writes `volume` as volume "vda" of a new point of `vm`; returns the id.
  StatusOr<std::string> WritePoint(const std::string& vm, const std::string& volume) {
    SP_ASSIGN_OR_RETURN(auto writer, repo_->BeginRecoveryPoint(Request(vm)));
    SP_RETURN_IF_ERROR(PutVolume(writer.get(), "vda", volume));
    PointDescription description;
    description.consistency = PointConsistency::kCrash;
    return Id(writer->Commit(description));
  }
  static Status PutVolume(RecoveryPointWriter* writer, const std::string& name,
                          const std::string& volume) {
    SP_ASSIGN_OR_RETURN(VolumeWriter * out, writer->AddVolume(name, volume.size()));
    for (uint64_t i = 0; i < out->chunk_count(); ++i) {
      SP_RETURN_IF_ERROR(out->PutChunk(i, volume.substr(i * kChunk, kChunk)));
    }
    return absl::OkStatus();
  }
  std::string ReadAll(const std::string& id, const std::string& volume) {
    auto reader = repo_->OpenVolume(id, volume);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return "";
    std::string data((*reader)->size(), 'x');
    Status status = (*reader)->ReadAt(0, data.size(), data.data());
    EXPECT_TRUE(status.ok()) << status;
    return data;
  }
  void ExpectVerifyClean() {
    auto report = repo_->Verify("");
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->ok()) << (report->problems.empty() ? "damaged point"
                                                           : report->problems[0].what);
  }

  MemFileSystem mem_;
  std::unique_ptr<Repository> repo_;
};

// A clock that always says the same time.
class FixedClock final : public Clock {
 public:
  explicit FixedClock(int64_t micros) : micros_(micros) {}
  SteadyTime Now() const override { return SteadyTime(std::chrono::microseconds(micros_)); }
  int64_t UnixMicros() const override { return micros_; }

 private:
  int64_t micros_;
};

TEST(RepositoryClockTest, PointIdsAndTimesComeFromTheRepositorysClock) {
  MemFileSystem mem;
  FixedClock init_clock(1'600'000'000'000'000), clock(1'700'000'000'123'456);
  InitOptions init;
  init.fs = &mem;
  init.clock = &init_clock;
  ASSERT_TRUE(Repository::Init("/repo", init).ok());
  OpenOptions options;
  options.fs = &mem;
  options.clock = &clock;
  auto repo = Repository::Open("/repo", options);
  ASSERT_TRUE(repo.ok()) << repo.status();
  EXPECT_EQ((*repo)->config().created_micros, 1'600'000'000'000'000);
  RecoveryPointRequest request;
  request.vm = VmIdentity{"uuid-web01", "web01"};
  auto writer = (*repo)->BeginRecoveryPoint(request);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ((*writer)->id().substr(0, 16), "20231114T221320Z");
  auto id = Id((*writer)->Commit({}));
  ASSERT_TRUE(id.ok()) << id.status();
  auto manifest = (*repo)->GetRecoveryPoint(*id);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->created_micros, 1'700'000'000'123'456);
  EXPECT_EQ(manifest->committed_micros, 1'700'000'000'123'456);
}

TEST_F(RepositoryTest, WritesAndReadsBackAVolume) {
  std::string volume = MakeVolume(1);
  auto id = WritePoint("web01", volume);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(ReadAll(*id, "vda"), volume);
  auto manifest = repo_->GetRecoveryPoint(*id);
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->vm_name, "web01");
  EXPECT_EQ(manifest->name, "web01");
  EXPECT_EQ(manifest->point_description.consistency, PointConsistency::kCrash);
  ASSERT_EQ(manifest->volumes.size(), 1u);
  EXPECT_EQ(manifest->volumes[0].chunks, 5u);
  EXPECT_EQ(manifest->volumes[0].zero_chunks, 1u);
  EXPECT_EQ(manifest->volumes[0].new_chunks, 4u);
  ExpectVerifyClean();
}

TEST_F(RepositoryTest, RandomReadsAtAnyOffsetAndStreaming) {
  std::string volume = MakeVolume(2);
  auto id = WritePoint("web01", volume);
  ASSERT_TRUE(id.ok()) << id.status();
  auto reader = *repo_->OpenVolume(*id, "vda");
  std::mt19937_64 random(7);
  for (int i = 0; i < 200; ++i) {
    uint64_t offset = random() % volume.size();
    uint64_t length = random() % std::min<uint64_t>(volume.size() - offset, 3 * kChunk);
    std::string got(length, 'x');
    ASSERT_TRUE(reader->ReadAt(offset, length, got.data()).ok());
    ASSERT_EQ(got, volume.substr(offset, length)) << offset << "+" << length;
  }
  std::string tail(10, 'x');
  EXPECT_TRUE(absl::IsOutOfRange(reader->ReadAt(volume.size() - 5, 10, tail.data())));
  EXPECT_TRUE(reader->IsZeroChunk(2));
  auto stream = *repo_->OpenStream(*id, "vda");
  std::string streamed, chunk;
  while (*stream->Next(&chunk)) streamed += chunk;
  EXPECT_EQ(streamed, volume);
}

TEST_F(RepositoryTest, SecondIngestOfSameDataStoresNothingNew) {
  std::string volume = MakeVolume(3);
  ASSERT_TRUE(WritePoint("web01", volume).ok());
  auto before = *repo_->Stats();
  auto second = WritePoint("web01", volume);
  ASSERT_TRUE(second.ok());
  auto after = *repo_->Stats();
  EXPECT_EQ(after.chunk_count, before.chunk_count);
  EXPECT_EQ(after.stored_bytes, before.stored_bytes);
  EXPECT_EQ(after.points, 2u);
  EXPECT_EQ(repo_->GetRecoveryPoint(*second)->volumes[0].new_chunks, 0u);
  EXPECT_GT(after.DedupRatio(), 1.0);
}

TEST_F(RepositoryTest, ZeroChunksAreNotStoredAndCompressionIsKeptOnlyWhenItHelps) {
  std::string volume = MakeVolume(4);
  ASSERT_TRUE(WritePoint("web01", volume).ok());
  auto stats = *repo_->Stats();
  EXPECT_EQ(stats.chunk_count, 4u);  // the zero chunk is not stored
  // Three random chunks stored raw (+ header), the compressible one much smaller.
  EXPECT_LT(stats.stored_bytes, 2 * kChunk + 1000 + kChunk / 2 + 4 * 64);
  EXPECT_GT(stats.stored_bytes, 2 * kChunk + 1000);
}

TEST_F(RepositoryTest, IncrementalReusesParentChunks) {
  std::string base = MakeVolume(5);
  auto parent = WritePoint("web01", base);
  ASSERT_TRUE(parent.ok());
  std::string changed = base;
  changed.replace(kChunk, kChunk, MakeChunk(99, kChunk, 0));
  auto writer = *repo_->BeginRecoveryPoint(Request("web01", *parent));
  auto volume = *writer->AddVolume("vda", changed.size());
  for (uint64_t i = 0; i < volume->chunk_count(); ++i) {
    Status status =
        i == 1 ? volume->PutChunk(i, changed.substr(i * kChunk, kChunk)) : volume->ReuseParent(i);
    ASSERT_TRUE(status.ok()) << status;
  }
  auto id = Id(writer->Commit({}));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(ReadAll(*id, "vda"), changed);
  EXPECT_EQ(repo_->GetRecoveryPoint(*id)->parent_id, *parent);
  EXPECT_EQ(repo_->GetRecoveryPoint(*id)->volumes[0].new_chunks, 1u);
}

TEST_F(RepositoryTest, ReuseParentWithoutParentIsRefused) {
  auto writer = *repo_->BeginRecoveryPoint(Request("web01"));
  auto volume = *writer->AddVolume("vda", kChunk);
  EXPECT_TRUE(absl::IsFailedPrecondition(volume->ReuseParent(0)));
}

TEST_F(RepositoryTest, CommitRefusesAVolumeWithMissingChunks) {
  auto writer = *repo_->BeginRecoveryPoint(Request("web01"));
  auto volume = *writer->AddVolume("vda", 3 * kChunk);
  ASSERT_TRUE(volume->PutZero(0).ok());
  ASSERT_TRUE(volume->PutZero(2).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(volume->PutZero(2)));
  auto id = Id(writer->Commit({}));
  EXPECT_TRUE(absl::IsFailedPrecondition(id.status()));
  EXPECT_THAT(id.status().message(), HasSubstr("chunk 1"));
  EXPECT_TRUE(repo_->ListRecoveryPoints()->empty());
}

TEST_F(RepositoryTest, AbortLeavesNothingReferenced) {
  {
    auto writer = *repo_->BeginRecoveryPoint(Request("web01"));
    ASSERT_TRUE(PutVolume(writer.get(), "vda", MakeVolume(6)).ok());
    writer->Abort();
  }
  EXPECT_TRUE(repo_->ListRecoveryPoints()->empty());
  EXPECT_TRUE(mem_.ListDir("/repo/points")->empty());
  uint64_t stored = repo_->Stats()->chunk_count;  // what the workers stored before the abort
  auto gc = repo_->CollectGarbage();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->chunks_deleted, stored);
  EXPECT_EQ(repo_->Stats()->chunk_count, 0u);
}

TEST_F(RepositoryTest, OneWriterPerVmButDifferentVmsAtOnce) {
  auto first = repo_->BeginRecoveryPoint(Request("web01"));
  ASSERT_TRUE(first.ok());
  auto same = repo_->BeginRecoveryPoint(Request("web01"));
  EXPECT_TRUE(absl::IsFailedPrecondition(same.status()));
  EXPECT_THAT(same.status().message(), HasSubstr("another backup of VM 'web01'"));
  auto other = repo_->BeginRecoveryPoint(Request("db01"));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(PutVolume(first->get(), "vda", MakeVolume(7)).ok());
  ASSERT_TRUE(PutVolume(other->get(), "vda", MakeVolume(8)).ok());
  EXPECT_TRUE(Id((*other)->Commit({})).ok());
  EXPECT_TRUE(Id((*first)->Commit({})).ok());
  EXPECT_TRUE(repo_->BeginRecoveryPoint(Request("web01")).ok());
}

TEST_F(RepositoryTest, SpaceLimitRefusesUpFrontWithAdvice) {
  ASSERT_TRUE(WritePoint("web01", MakeVolume(9)).ok());
  auto usage = *repo_->Usage("uuid-web01");
  EXPECT_EQ(usage.points, 1u);
  EXPECT_GT(usage.stored_bytes, 2 * kChunk);
  RecoveryPointRequest request = Request("web01");
  request.space_limit_bytes = usage.stored_bytes + kChunk;
  request.estimated_bytes = 2 * kChunk;
  auto refused = repo_->BeginRecoveryPoint(request);
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status()));
  EXPECT_THAT(refused.status().message(), HasSubstr("stillpoint vm set-limit web01"));
  EXPECT_THAT(refused.status().message(), HasSubstr("stillpoint repo prune web01"));
  EXPECT_TRUE(mem_.ListDir("/repo/points")->size() == 1);
}

TEST_F(RepositoryTest, SpaceLimitAlsoStopsAWriteThatGrowsPastIt) {
  RecoveryPointRequest request = Request("web01");
  request.space_limit_bytes = 2 * kChunk;
  request.estimated_bytes = kChunk;  // an underestimate
  auto writer = *repo_->BeginRecoveryPoint(request);
  Status put = PutVolume(writer.get(), "vda", MakeVolume(10));
  auto id = put.ok() ? Id(writer->Commit({})) : StatusOr<std::string>(put);
  EXPECT_TRUE(absl::IsResourceExhausted(id.status())) << id.status();
  EXPECT_TRUE(repo_->ListRecoveryPoints()->empty());
}

TEST_F(RepositoryTest, CorruptChunkIsReportedByVerifyAndRefusedByReads) {
  auto id = WritePoint("web01", MakeVolume(11));
  ASSERT_TRUE(id.ok());
  auto index =
      *repo_->LoadIndex(*repo_->GetRecoveryPoint(*id), repo_->GetRecoveryPoint(*id)->volumes[0]);
  ASSERT_TRUE(mem_.CorruptByte(repo_->ChunkPath(index.chunks[3]), 5000).ok());
  auto report = *repo_->Verify("");
  ASSERT_EQ(report.problems.size(), 1u);
  EXPECT_EQ(report.problems[0].point_id, *id);
  EXPECT_EQ(report.problems[0].volume, "vda");
  EXPECT_EQ(report.problems[0].offset, 3u * kChunk);
  auto reader = *repo_->OpenVolume(*id, "vda");
  std::string buffer(100, 'x');
  Status read = reader->ReadAt(3 * kChunk + 10, 100, buffer.data());
  ASSERT_TRUE(absl::IsDataLoss(read)) << read;
  EXPECT_THAT(read.message(), HasSubstr(*id));
  EXPECT_THAT(read.message(), HasSubstr("volume 'vda', offset 3145728"));
  EXPECT_TRUE(reader->ReadAt(0, 100, buffer.data()).ok());
}

TEST_F(RepositoryTest, MissingChunkIsReportedForEveryPointUsingIt) {
  std::string volume = MakeVolume(12);
  auto first = WritePoint("web01", volume);
  auto second = WritePoint("web01", volume);
  ASSERT_TRUE(first.ok() && second.ok());
  auto manifest = *repo_->GetRecoveryPoint(*first);
  auto index = *repo_->LoadIndex(manifest, manifest.volumes[0]);
  ASSERT_TRUE(mem_.DeleteFile(repo_->ChunkPath(index.chunks[0])).ok());
  auto report = *repo_->Verify("");
  ASSERT_EQ(report.problems.size(), 2u);
  EXPECT_EQ(report.problems[0].what, "chunk is missing");
  EXPECT_EQ(report.problems[0].offset, 0u);
}

TEST_F(RepositoryTest, DamagedIndexOrManifestIsReported) {
  auto id = WritePoint("web01", MakeVolume(13));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(mem_.CorruptByte(JoinPath(repo_->PointDir(*id), "0.idx"), 40).ok());
  auto report = *repo_->Verify("");
  ASSERT_EQ(report.damaged_points.size(), 1u);
  EXPECT_THAT(report.damaged_points[0], HasSubstr("index checksum mismatch"));
  EXPECT_FALSE(repo_->CollectGarbage().ok());  // gc deletes nothing when in doubt
}

TEST_F(RepositoryTest, UnknownVersionAndMissingRepositoryAreRefused) {
  std::string config = *mem_.ReadWholeFile("/repo/config");
  size_t at = config.find("\"version\": 3");
  ASSERT_NE(at, std::string::npos);
  config.replace(at, 12, "\"version\": 9");
  ASSERT_TRUE(mem_.WriteFileDurably("/repo/config", config).ok());
  OpenOptions options;
  options.fs = &mem_;
  auto opened = Repository::Open("/repo", options);
  ASSERT_TRUE(absl::IsFailedPrecondition(opened.status())) << opened.status();
  EXPECT_THAT(opened.status().message(), HasSubstr("format version 9"));
  EXPECT_TRUE(absl::IsNotFound(Repository::Open("/nothing", options).status()));
}

TEST_F(RepositoryTest, InitRefusesBadChunkSizesAndExistingRepositories) {
  InitOptions init;
  init.fs = &mem_;
  EXPECT_TRUE(absl::IsAlreadyExists(Repository::Init("/repo", init)));
  init.chunk_size = 3u << 20;
  EXPECT_TRUE(absl::IsInvalidArgument(Repository::Init("/other", init)));
}

TEST_F(RepositoryTest, DeleteThenGcFreesOnlyUnsharedChunks) {
  std::string volume = MakeVolume(14);
  auto first = WritePoint("web01", volume);
  std::string other = volume;
  other.replace(0, kChunk, MakeChunk(555, kChunk, 0));
  auto second = WritePoint("web01", other);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(repo_->DeleteRecoveryPoint(*first).ok());
  auto gc = *repo_->CollectGarbage();
  EXPECT_EQ(gc.chunks_deleted, 1u);
  EXPECT_GT(gc.bytes_freed, kChunk);
  EXPECT_EQ(ReadAll(*second, "vda"), other);
  ExpectVerifyClean();
  EXPECT_TRUE(absl::IsNotFound(repo_->GetRecoveryPoint(*first).status()));
}

TEST_F(RepositoryTest, GcBesideARunningBackupLosesNothing) {
  std::string volume = MakeVolume(15);
  auto old_point = WritePoint("web01", volume);
  ASSERT_TRUE(old_point.ok());
  // A backup starts, stores a new chunk and will reuse the old point's chunks...
  auto writer = *repo_->BeginRecoveryPoint(Request("db01"));
  auto out = *writer->AddVolume("vda", volume.size());
  ASSERT_TRUE(out->PutChunk(0, MakeChunk(777, kChunk, 0)).ok());
  ASSERT_TRUE(writer->Flush().ok());
  // ...while the old point is deleted and gc runs. The old chunks predate the writer and nobody
  // references them: gc may delete them, and the writer then stores them again. The chunk the
  // writer stored itself is spared.
  ASSERT_TRUE(repo_->DeleteRecoveryPoint(*old_point).ok());
  auto gc = repo_->CollectGarbage();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->chunks_deleted, 4u);
  EXPECT_EQ(gc->chunks_spared, 1u);
  for (uint64_t i = 1; i < out->chunk_count(); ++i) {
    ASSERT_TRUE(out->PutChunk(i, volume.substr(i * kChunk, kChunk)).ok());
  }
  auto id = Id(writer->Commit({}));
  ASSERT_TRUE(id.ok()) << id.status();
  ExpectVerifyClean();
  std::string expected = MakeChunk(777, kChunk, 0) + volume.substr(kChunk);
  EXPECT_EQ(ReadAll(*id, "vda"), expected);
}

TEST_F(RepositoryTest, GcSparesChunksReusedAfterItStarted) {
  std::string volume = MakeVolume(16);
  auto old_point = WritePoint("web01", volume);
  ASSERT_TRUE(old_point.ok());
  ASSERT_TRUE(repo_->DeleteRecoveryPoint(*old_point).ok());
  // The chunks are now garbage, older than any writer. A writer that dedups against one of them
  // refreshes its timestamp, so the gc that follows spares it.
  auto writer = *repo_->BeginRecoveryPoint(Request("web01"));
  ASSERT_TRUE(PutVolume(writer.get(), "vda", volume).ok());
  ASSERT_TRUE(writer->Flush().ok());
  auto gc = *repo_->CollectGarbage();
  EXPECT_EQ(gc.chunks_deleted, 0u);
  EXPECT_EQ(gc.chunks_spared, 4u);
  auto id = Id(writer->Commit({}));
  ASSERT_TRUE(id.ok());
  ExpectVerifyClean();
  EXPECT_EQ(ReadAll(*id, "vda"), volume);
}

TEST_F(RepositoryTest, GcLeavesTheDirectoryOfAWriterThatStartedDuringItAlone) {
  // Simulates the interleaving: gc has scanned pending/ already when a writer registers and
  // creates its (still empty) point directory.
  auto writer = *repo_->BeginRecoveryPoint(Request("web01"));
  auto gc = *repo_->CollectGarbage();
  EXPECT_EQ(gc.incomplete_points_removed, 0u);
  ASSERT_TRUE(PutVolume(writer.get(), "vda", MakeVolume(17)).ok());
  EXPECT_TRUE(Id(writer->Commit({})).ok());
}

TEST_F(RepositoryTest, PruneKeepsWhatThePolicySays) {
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(*WritePoint("web01", MakeVolume(20)));
  ASSERT_TRUE(WritePoint("db01", MakeVolume(21)).ok());
  PrunePolicy policy;
  policy.keep_last = 2;
  auto dry = *repo_->Prune("web01", policy, /*dry_run=*/true);
  EXPECT_EQ(dry.size(), 4u);
  EXPECT_EQ(repo_->ListRecoveryPoints()->size(), 5u);
  auto done = *repo_->Prune("web01", policy, /*dry_run=*/false);
  auto left = *repo_->ListRecoveryPoints();
  ASSERT_EQ(left.size(), 3u);
  EXPECT_EQ(left[0].id, ids[2]);
  EXPECT_EQ(left[1].id, ids[3]);
  EXPECT_EQ(left[2].vm_name, "db01");
  EXPECT_FALSE(done[3].keep);
  EXPECT_TRUE(absl::IsNotFound(repo_->Prune("nobody", policy, true).status()));
}

TEST_F(RepositoryTest, IdPrefixesResolve) {
  auto id = *WritePoint("web01", MakeVolume(22));
  EXPECT_EQ(repo_->GetRecoveryPoint(id.substr(0, id.size() - 3))->id, id);
  EXPECT_TRUE(absl::IsInvalidArgument(repo_->GetRecoveryPoint("../x").status()));
}

// --- faults -----------------------------------------------------------------------------------

// After a power cut at any step of a commit, the repository verifies clean and the point is
// either absent or complete and correct.
TEST_F(RepositoryTest, PowerCutAtEveryStepOfACommit) {
  std::string base = MakeVolume(30);
  auto parent = WritePoint("web01", base);
  ASSERT_TRUE(parent.ok());
  std::string volume = MakeVolume(31);
  volume.replace(0, kChunk, base.substr(0, kChunk));  // one deduplicated chunk
  bool committed = false;
  for (int64_t budget = 0; !committed; ++budget) {
    ASSERT_LT(budget, 500) << "commit never finished";
    FaultInjectionFileSystem faulty(&mem_);
    Reopen(&faulty);
    faulty.FailAfterMutations(budget);
    std::string id;
    {
      auto writer = repo_->BeginRecoveryPoint(Request("web01"));
      if (writer.ok()) {
        Status status = PutVolume(writer->get(), "vda", volume);
        auto commit = status.ok() ? Id((*writer)->Commit({})) : StatusOr<std::string>(status);
        committed = commit.ok();
        if (commit.ok()) id = *commit;
      }
    }
    repo_.reset();
    mem_.DropUnsyncedData();
    Reopen();
    SCOPED_TRACE(absl::StrCat("power cut after ", budget, " mutations"));
    ExpectVerifyClean();
    auto points = *repo_->ListRecoveryPoints();
    ASSERT_GE(points.size(), 1u);
    ASSERT_LE(points.size(), 2u);
    if (points.size() == 2) {
      EXPECT_EQ(ReadAll(points[1].id, "vda"), volume);
      if (!committed) {
        ASSERT_TRUE(repo_->DeleteRecoveryPoint(points[1].id).ok());
      }
    }
    EXPECT_EQ(ReadAll(*parent, "vda"), base);
    // Every chunk left under its name is whole: a new point deduplicated against them reads
    // back right (a chunk is renamed into place only after a flush made its bytes durable).
    auto again = WritePoint("web01", volume);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(ReadAll(*again, "vda"), volume);
    ASSERT_TRUE(repo_->DeleteRecoveryPoint(*again).ok());
    ASSERT_TRUE(repo_->CollectGarbage().ok());
    ExpectVerifyClean();
  }
}

TEST_F(RepositoryTest, NoSpaceFailsTheWriteCleanly) {
  FaultInjectionFileSystem faulty(&mem_);
  Reopen(&faulty);
  faulty.InjectError(FsOp::kAppend, absl::ResourceExhaustedError("No space left on device"),
                     "/chunks/", /*skip=*/2, /*count=*/-1);
  auto id = WritePoint("web01", MakeVolume(40));
  ASSERT_TRUE(absl::IsResourceExhausted(id.status())) << id.status();
  EXPECT_THAT(id.status().message(), HasSubstr("No space left"));
  faulty.ClearFaults();
  EXPECT_TRUE(repo_->ListRecoveryPoints()->empty());
  ExpectVerifyClean();
  ASSERT_TRUE(repo_->CollectGarbage().ok());
  EXPECT_TRUE(WritePoint("web01", MakeVolume(40)).ok());  // lock released, space back
}

TEST_F(RepositoryTest, ReadErrorIsReportedWithPointVolumeAndOffset) {
  auto id = WritePoint("web01", MakeVolume(41));
  ASSERT_TRUE(id.ok());
  FaultInjectionFileSystem faulty(&mem_);
  Reopen(&faulty);
  faulty.InjectError(FsOp::kRead, absl::DataLossError("Input/output error"), "/chunks/");
  auto reader = *repo_->OpenVolume(*id, "vda");
  std::string buffer(10, 'x');
  Status read = reader->ReadAt(kChunk, 10, buffer.data());
  ASSERT_TRUE(absl::IsDataLoss(read)) << read;
  EXPECT_THAT(read.message(), HasSubstr("offset 1048576"));
  EXPECT_THAT(read.message(), HasSubstr("Input/output error"));
  EXPECT_TRUE(reader->ReadAt(2 * kChunk, 10, buffer.data()).ok());  // zero chunk: no I/O
  auto report = *repo_->Verify("");
  EXPECT_EQ(report.problems.size(), 4u);
}

// --- real files -------------------------------------------------------------------------------

size_t CountChunkFiles(const std::string& repo) {
  size_t count = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(repo + "/chunks")) {
    if (entry.is_regular_file() && !internal::IsTempName(entry.path().filename().string())) {
      ++count;
    }
  }
  return count;
}

TEST(RepositoryProcessTest, WriterKilledMidWriteLeavesAVerifiableRepository) {
  sp::testing::TempDir dir;
  std::string path = dir.path() + "/repo";
  InitOptions init;
  init.chunk_size = kChunk;
  ASSERT_TRUE(Repository::Init(path, init).ok());
  RecoveryPointRequest request;
  request.vm = VmIdentity{"uuid-web01", "web01"};
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto repo = Repository::Open(path, OpenOptions{});
    if (!repo.ok()) ::_exit(1);
    auto writer = (*repo)->BeginRecoveryPoint(request);
    if (!writer.ok()) ::_exit(2);
    auto volume = (*writer)->AddVolume("vda", 100000ull * kChunk);
    for (uint64_t i = 0; volume.ok(); ++i) {
      if (!(*volume)->PutChunk(i, MakeChunk(i, kChunk, 0)).ok()) ::_exit(3);
    }
    ::_exit(4);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (CountChunkFiles(path) < 5 && std::chrono::steady_clock::now() < deadline) {
    ASSERT_EQ(::waitpid(child, nullptr, WNOHANG), 0) << "the writer exited early";
    std::this_thread::yield();
  }
  ::kill(child, SIGKILL);
  int wait_status = 0;
  ASSERT_EQ(::waitpid(child, &wait_status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(wait_status));

  OpenOptions options;
  options.timestamp_slack_micros = 0;
  auto repo = *Repository::Open(path, options);
  EXPECT_TRUE(repo->ListRecoveryPoints()->empty());
  EXPECT_TRUE(repo->Verify("")->ok());
  // The dead writer's lock died with it: the VM can be backed up again.
  EXPECT_TRUE(repo->BeginRecoveryPoint(request).ok());
  auto gc = repo->CollectGarbage();
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_GE(gc->chunks_deleted, 5u);
  EXPECT_EQ(gc->incomplete_points_removed, 1u);
  EXPECT_EQ(CountChunkFiles(path), 0u);
  EXPECT_TRUE(repo->Verify("")->ok());
}

// Every file and directory of the repository, with its permission bits.
std::vector<std::pair<std::string, unsigned>> ModesUnder(const std::string& root) {
  std::vector<std::pair<std::string, unsigned>> modes;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    modes.emplace_back(entry.path().string(), sp::testing::ModeOf(entry.path().c_str()));
  }
  return modes;
}

// Makes an encrypted repository at `dir`/repo with its key in `dir`/key; returns how to open it.
OpenOptions InitEncrypted(const std::string& dir) {
  InitOptions init;
  init.chunk_size = kChunk;
  init.encrypted = true;
  init.key_file = dir + "/key";
  Status made = Repository::Init(dir + "/repo", init);
  EXPECT_TRUE(made.ok()) << made;
  OpenOptions options;
  options.key_file = init.key_file;
  return options;
}

TEST(RepositoryModesTest, EverythingIsTheOwnersOnlyWhateverTheUmask) {
  sp::testing::TempDir dir;
  sp::testing::ScopedUmask open_umask(0);
  std::string path = dir.path() + "/repo";
  OpenOptions options = InitEncrypted(dir.path());
  auto repo = *Repository::Open(path, options);
  RecoveryPointRequest request;
  request.vm = VmIdentity{"uuid-web01", "web01"};
  auto writer = *repo->BeginRecoveryPoint(request);
  ASSERT_TRUE((*writer->AddVolume("vda", kChunk))->PutChunk(0, MakeChunk(1, kChunk, 0)).ok());
  ASSERT_TRUE(Id(writer->Commit({})).ok());
  repo.reset();
  EXPECT_EQ(sp::testing::ModeOf(path.c_str()), 0700u);
  EXPECT_EQ(sp::testing::ModeOf(options.key_file.c_str()), 0600u);
  auto modes = ModesUnder(path);
  EXPECT_GT(modes.size(), 260u);
  for (const auto& [file, mode] : modes) {
    EXPECT_EQ(mode & 077u, 0u) << file << " has mode " << std::oct << mode;
  }
}

TEST(RepositoryModesTest, RepositoryOrKeyOthersCanWriteIsRefused) {
  sp::testing::TempDir dir;
  std::string path = dir.path() + "/repo";
  OpenOptions options = InitEncrypted(dir.path());
  ASSERT_TRUE(Repository::Open(path, options).ok());
  for (const std::string& target : {path, path + "/" + internal::kConfigFile, options.key_file}) {
    unsigned mode = sp::testing::ModeOf(target.c_str());
    ASSERT_EQ(::chmod(target.c_str(), mode | 0020), 0);
    auto refused = Repository::Open(path, options);
    EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << target;
    EXPECT_THAT(refused.status().message(), HasSubstr(target + " is writable by its group"));
    EXPECT_THAT(refused.status().message(), HasSubstr("chmod go-w " + target));
    ASSERT_EQ(::chmod(target.c_str(), mode), 0);
  }
  EXPECT_TRUE(Repository::Open(path, options).ok());
}

TEST(RepositoryModesTest, KeyOthersCanReadIsRefused) {
  sp::testing::TempDir dir;
  std::string path = dir.path() + "/repo";
  OpenOptions options = InitEncrypted(dir.path());
  for (unsigned mode : {0640u, 0604u}) {
    ASSERT_EQ(::chmod(options.key_file.c_str(), mode), 0);
    auto refused = Repository::Open(path, options);
    EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << std::oct << mode;
    EXPECT_THAT(refused.status().message(), HasSubstr("chmod 600 " + options.key_file));
  }
  ASSERT_EQ(::chmod(options.key_file.c_str(), 0600), 0);
  EXPECT_TRUE(Repository::Open(path, options).ok());
}

TEST(RepositoryEncryptionTest, EncryptedRepositoryNeedsItsKey) {
  sp::testing::TempDir dir;
  std::string path = dir.path() + "/repo";
  InitOptions init;
  init.chunk_size = kChunk;
  init.encrypted = true;
  init.key_file = dir.path() + "/key";
  ASSERT_TRUE(Repository::Init(path, init).ok());
  OpenOptions options;
  options.key_file = init.key_file;
  auto repo = *Repository::Open(path, options);
  EXPECT_TRUE(repo->config().encrypted);
  std::string secret(kChunk, '\0');
  std::string marker = "confidential payroll data ";
  for (size_t i = 0; i + marker.size() <= secret.size(); i += marker.size()) {
    secret.replace(i, marker.size(), marker);
  }
  RecoveryPointRequest request;
  request.vm = VmIdentity{"uuid-web01", "web01"};
  auto writer = *repo->BeginRecoveryPoint(request);
  auto volume = *writer->AddVolume("vda", kChunk);
  ASSERT_TRUE(volume->PutChunk(0, secret).ok());
  auto id = Id(writer->Commit({}));
  ASSERT_TRUE(id.ok()) << id.status();
  auto reader = *repo->OpenVolume(*id, "vda");
  std::string back(kChunk, 'x');
  ASSERT_TRUE(reader->ReadAt(0, kChunk, back.data()).ok());
  EXPECT_EQ(back, secret);
  EXPECT_TRUE(repo->Verify("")->ok());
  auto index =
      *repo->LoadIndex(*repo->GetRecoveryPoint(*id), repo->GetRecoveryPoint(*id)->volumes[0]);
  EXPECT_NE(index.chunks[0], Sha256(secret));  // keyed ids
  std::string object = *repo->fs()->ReadWholeFile(repo->ChunkPath(index.chunks[0]));
  EXPECT_EQ(object.find("payroll"), std::string::npos);

  auto without_key = Repository::Open(path, OpenOptions{});
  EXPECT_TRUE(absl::IsFailedPrecondition(without_key.status()));
  EXPECT_THAT(without_key.status().message(), HasSubstr("encrypted"));
  std::string other_key = dir.path() + "/other";
  {
    std::ofstream out(other_key);
    out << std::string(64, 'a') << "\n";
  }
  ASSERT_EQ(::chmod(other_key.c_str(), 0600), 0);
  options.key_file = other_key;
  auto wrong_key = Repository::Open(path, options);
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong_key.status()));
  EXPECT_THAT(wrong_key.status().message(), HasSubstr("is not the key"));
}

// The key file is written beside its place and renamed there: whatever step of writing it
// fails, no half-written key is ever at the key file's path (where it would be read, or block a
// retry), and no repository refers to a key that is not there.
TEST(RepositoryEncryptionTest, AKeyFileThatFailsToBeWrittenIsNeverLeftHalfWritten) {
  struct Step {
    FsOp op;
    const char* name;
  };
  for (Step step : {Step{FsOp::kNewWritableFile, "create"}, Step{FsOp::kAppend, "write"},
                    Step{FsOp::kSync, "sync"}, Step{FsOp::kRename, "rename"}}) {
    SCOPED_TRACE(step.name);
    MemFileSystem mem;
    ASSERT_TRUE(mem.CreateDir("/keys").ok());
    FaultInjectionFileSystem faulty(&mem);
    faulty.InjectError(step.op, absl::ResourceExhaustedError("No space left on device"),
                       "/keys/key");
    InitOptions init;
    init.chunk_size = kChunk;
    init.encrypted = true;
    init.key_file = "/keys/key";
    init.fs = &faulty;
    Status made = Repository::Init("/repo", init);
    EXPECT_TRUE(absl::IsResourceExhausted(made)) << made;
    EXPECT_THAT(made.message(), HasSubstr("create key file /keys/key"));
    EXPECT_TRUE(mem.ListDir("/keys")->empty());  // neither the key nor its temporary file
    EXPECT_FALSE(mem.Exists("/repo/config"));

    faulty.ClearFaults();
    ASSERT_TRUE(Repository::Init("/repo", init).ok());
    OpenOptions options;
    options.fs = &mem;
    options.key_file = init.key_file;
    auto repo = Repository::Open("/repo", options);
    EXPECT_TRUE(repo.ok()) << repo.status();
  }
}

TEST(RepositoryEncryptionTest, PowerCutAtEveryStepOfAnEncryptedInitLeavesAWholeKeyOrNone) {
  bool made = false;
  for (int64_t budget = 0; !made; ++budget) {
    ASSERT_LT(budget, 1000) << "init never finished";
    SCOPED_TRACE(absl::StrCat("power cut after ", budget, " mutations"));
    MemFileSystem mem;
    ASSERT_TRUE(mem.CreateDir("/keys").ok());
    FaultInjectionFileSystem faulty(&mem);
    faulty.FailAfterMutations(budget);
    InitOptions init;
    init.chunk_size = kChunk;
    init.encrypted = true;
    init.key_file = "/keys/key";
    init.fs = &faulty;
    made = Repository::Init("/repo", init).ok();
    mem.DropUnsyncedData();
    auto key = mem.ReadWholeFile("/keys/key");
    if (key.ok()) {
      EXPECT_EQ(key->size(), 65u) << *key;  // 64 hex digits and a newline
    } else {
      EXPECT_TRUE(absl::IsNotFound(key.status())) << key.status();
    }
    // Whatever survived: a retry makes a repository that opens with the key.
    if (!mem.Exists("/repo/config")) {
      init.fs = &mem;
      ASSERT_TRUE(mem.DeleteTree("/repo").ok());
      ASSERT_TRUE(Repository::Init("/repo", init).ok());
    }
    OpenOptions options;
    options.fs = &mem;
    options.key_file = init.key_file;
    auto repo = Repository::Open("/repo", options);
    ASSERT_TRUE(repo.ok()) << repo.status();
  }
}

TEST(RepositoryInitAtomicallyTest, MakesOneOrKeepsTheOneThatWasFirst) {
  sp::testing::TempDir dir;
  std::string path = dir.path() + "/repo";
  InitOptions init;
  init.chunk_size = kChunk;
  auto made = Repository::InitAtomically(path, init);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(*made);
  std::string id = (*Repository::Open(path, OpenOptions{}))->config().id;

  auto second = Repository::InitAtomically(path, init);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(*second);
  EXPECT_EQ((*Repository::Open(path, OpenOptions{}))->config().id, id);
  // Nothing is left beside it.
  EXPECT_EQ(*FileSystem::Posix()->ListDir(dir.path()), std::vector<std::string>{"repo"});
}

TEST(RepositoryInitAtomicallyTest, AFailedRenameLeavesNothingAndAnotherTryWorks) {
  sp::testing::TempDir dir;
  std::string path = dir.path() + "/repo";
  FaultInjectionFileSystem faulty(FileSystem::Posix());
  // The first rename under the private directory puts its config in place; the second is the
  // private directory's own.
  faulty.InjectError(FsOp::kRename, absl::PermissionDeniedError("Permission denied"),
                     path + ".new-", /*skip=*/1, /*count=*/1);
  InitOptions init;
  init.chunk_size = kChunk;
  init.fs = &faulty;
  auto made = Repository::InitAtomically(path, init);
  EXPECT_TRUE(absl::IsPermissionDenied(made.status())) << made.status();
  EXPECT_THAT(made.status().message(), HasSubstr("creating repository " + path));
  EXPECT_TRUE(FileSystem::Posix()->ListDir(dir.path())->empty());
  made = Repository::InitAtomically(path, init);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(*made);
  EXPECT_TRUE(Repository::Open(path, OpenOptions{}).ok());

  // Something that is not a repository in the way is an error, and stays as it was.
  std::string other = dir.path() + "/other";
  ASSERT_TRUE(MakeDirs(other + "/stuff").ok());
  auto refused = Repository::InitAtomically(other, init);
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("creating repository " + other));
  EXPECT_TRUE(PathExists(other + "/stuff"));
  auto names = *FileSystem::Posix()->ListDir(dir.path());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"other", "repo"}));
}

// The repository in tests/data/v1/repository, written by the stillpoint before version 2
// (tests/data/v1/README.md), copied to `path` of `fs`, with the empty directories git keeps not.
void CopyVersionOneRepository(FileSystem* fs, const std::string& path) {
  InitOptions init;
  init.chunk_size = kChunk;
  init.fs = fs;
  ASSERT_TRUE(Repository::Init(path, init).ok());  // the layout; its config is replaced below
  std::filesystem::path source = std::string(SP_TEST_DATA_DIR) + "/v1/repository";
  for (const auto& entry : std::filesystem::recursive_directory_iterator(source)) {
    std::string relative = std::filesystem::relative(entry.path(), source).string();
    if (absl::StartsWith(relative, "show.")) continue;  // what the CLI showed of it
    if (entry.is_directory()) {
      ASSERT_TRUE(fs->CreateDirs(JoinPath(path, relative)).ok());
      continue;
    }
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    ASSERT_TRUE(fs->WriteFileDurably(JoinPath(path, relative), bytes.str()).ok());
  }
}

constexpr char kVersionOnePoint[] = "20261203T161629Z-9b03e381";

int ConfigVersion(FileSystem* fs, const std::string& path) {
  auto text = fs->ReadWholeFile(JoinPath(path, internal::kConfigFile));
  return text.ok() ? nlohmann::json::parse(*text).value("version", 0) : 0;
}

TEST(VersionOneRepositoryTest, ReadsItAsItIsAndUpgradesItBeforeTheFirstNewPoint) {
  MemFileSystem mem;
  CopyVersionOneRepository(&mem, "/old");
  OpenOptions options;
  options.fs = &mem;
  auto repo = Repository::Open("/old", options);
  ASSERT_TRUE(repo.ok()) << repo.status();
  EXPECT_EQ((*repo)->config().version, 1);
  auto old_point = (*repo)->GetRecoveryPoint(kVersionOnePoint);
  ASSERT_TRUE(old_point.ok()) << old_point.status();
  EXPECT_EQ(old_point->version, 1);
  EXPECT_EQ(old_point->point_description.consistency, PointConsistency::kCrash);
  EXPECT_EQ(old_point->point_description.vm->memory_mib, 64);
  // The images were 1 and 2 MiB: 64 KiB of 0xab at 0 of root, 64 KiB of 0xcd at 1 MiB of data.
  auto root = (*repo)->OpenVolume(kVersionOnePoint, "root");
  ASSERT_TRUE(root.ok()) << root.status();
  std::string bytes(kChunk, 'x');
  ASSERT_TRUE((*root)->ReadAt(0, kChunk, bytes.data()).ok());
  EXPECT_EQ(bytes, std::string(64 << 10, '\xab') + std::string(kChunk - (64 << 10), '\0'));
  ASSERT_TRUE((*repo)->Verify("").ok());
  EXPECT_TRUE((*repo)->Verify("")->ok());
  EXPECT_EQ(ConfigVersion(&mem, "/old"), 1);  // reading changes nothing

  RecoveryPointRequest request;
  request.vm = VmIdentity{old_point->vm_id, "tiny"};
  auto writer = (*repo)->BeginRecoveryPoint(request);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(ConfigVersion(&mem, "/old"), 3);
  auto volume = (*writer)->AddVolume("root", kChunk);
  ASSERT_TRUE((*volume)->PutChunk(0, bytes).ok());
  PointDescription description;
  description.consistency = PointConsistency::kApplication;
  auto committed = (*writer)->Commit(description);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->version, 2);

  repo = Repository::Open("/old", options);
  ASSERT_TRUE(repo.ok()) << repo.status();
  EXPECT_EQ((*repo)->config().version, 3);
  auto points = (*repo)->ListRecoveryPoints();
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 2u);
  EXPECT_EQ((*points)[0].id, kVersionOnePoint);
  EXPECT_EQ((*points)[0].version, 1);
  EXPECT_EQ((*points)[1].version, 2);
  EXPECT_EQ((*points)[1].point_description, description);
  EXPECT_TRUE((*repo)->Verify("")->ok());
  auto data = (*repo)->OpenVolume(kVersionOnePoint, "data");
  ASSERT_TRUE(data.ok()) << data.status();
  std::string tail(64 << 10, 'x');
  ASSERT_TRUE((*data)->ReadAt(kChunk, tail.size(), tail.data()).ok());
  EXPECT_EQ(tail, std::string(64 << 10, '\xcd'));
  // The new point deduplicated against the old one.
  EXPECT_EQ(committed->volumes[0].new_chunks, 0u);
}

TEST(RepositoryVersionTest, RefusesAVersionItDoesNotKnowSayingWhy) {
  MemFileSystem mem;
  CopyVersionOneRepository(&mem, "/repo");
  nlohmann::json config = nlohmann::json::parse(*mem.ReadWholeFile("/repo/config"));
  config.erase("checksum");
  config["version"] = 4;
  config["checksum"] = DigestHex(Sha256(config.dump()));
  ASSERT_TRUE(mem.WriteFileDurably("/repo/config", config.dump()).ok());
  OpenOptions options;
  options.fs = &mem;
  auto repo = Repository::Open("/repo", options);
  EXPECT_TRUE(absl::IsFailedPrecondition(repo.status())) << repo.status();
  EXPECT_THAT(std::string(repo.status().message()),
              HasSubstr("has format version 4; this stillpoint reads versions 1 to 3. It was "
                        "written by a newer stillpoint"));
}

TEST_F(RepositoryTest, NewRepositoriesAreVersionThree) {
  EXPECT_EQ(repo_->config().version, 3);
  EXPECT_EQ(ConfigVersion(&mem_, "/repo"), 3);
}

TEST_F(RepositoryTest, CommitRefusesADescriptionThatWouldNotReadBack) {
  auto writer = *repo_->BeginRecoveryPoint(Request("web01"));
  ASSERT_TRUE(PutVolume(writer.get(), "vda", MakeVolume(3)).ok());
  PointDescription description;
  description.vm = PointVm{};
  description.vm->vcpus = 0;
  auto committed = writer->Commit(description);
  EXPECT_TRUE(absl::IsInvalidArgument(committed.status())) << committed.status();
  EXPECT_THAT(std::string(committed.status().message()), HasSubstr("field 'vm.vcpus'"));
  EXPECT_TRUE(repo_->ListRecoveryPoints()->empty());
}

}  // namespace
}  // namespace sp::repo
