// The capture end to end in one process, with fakes only where it leaves the process: a model of
// QEMU's block layer behind QMP (testing/fake_qemu.h), a model of the guest agent
// (testing/fake_agent.h), in-memory disks served as block sources, and a thaw guard that is no
// process. The catalog (SQLite), the repository, the run directory with the VM's capture lock,
// the freeze record and the cut's scratch files are real, in a temporary directory.
//
// Each failure test fails one step and checks what the capture promises whatever happens: the
// point is committed complete or nothing of it is referenced (the catalog says why), the guest is
// thawed and its agent connection closed, QEMU's graph is as before, and the bitmaps still serve
// the next incremental.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "block/stream.h"
#include "capture/capture.h"
#include "capture/internal/seams.h"
#include "capture/live_cut.h"
#include "catalog/recovery_points.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "platform/process.h"
#include "testing/fake_agent.h"
#include "testing/fake_block_source.h"
#include "testing/fake_qemu.h"
#include "testing/temp_dir.h"
#include "vm/machine.h"

namespace sp::capture {
namespace {

using testing::FakeAgent;
using testing::FakeQemu;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint32_t kChunk = 1u << 20;
constexpr uint64_t kDiskSize = 4 * kChunk;
constexpr uint64_t kBlock = 64 * 1024;  // the granularity of the fake disks' extents
constexpr char kSilent[] = "guest agent did not answer within 2000 ms";

// A disk's bytes and what changed since the last point (what QEMU's dirty bitmap records).
struct FakeDisk {
  std::string bytes;
  std::vector<std::pair<uint64_t, uint64_t>> dirty;  // offset, length
  uint64_t fail_at = UINT64_MAX;                     // the read covering it fails

  void Write(uint64_t offset, const std::string& data) {
    bytes.replace(offset, data.size(), data);
    dirty.push_back({offset, data.size()});
  }
  bool Dirty(uint64_t offset, uint64_t length) const {
    return std::any_of(dirty.begin(), dirty.end(), [&](const auto& range) {
      return range.first < offset + length && offset < range.first + range.second;
    });
  }
};

// Per block: all zeros is a hole; with a bitmap, a block is dirty when a write touched it.
std::vector<block::Extent> ExtentsOf(const FakeDisk& disk, bool bitmap) {
  std::vector<block::Extent> extents;
  for (uint64_t offset = 0; offset < disk.bytes.size(); offset += kBlock) {
    bool zero = block::IsAllZero(disk.bytes.data() + offset, kBlock);
    extents.push_back({offset, kBlock, zero, !bitmap || disk.Dirty(offset, kBlock)});
  }
  return extents;
}

std::string Pattern(char seed, uint64_t size) {
  std::string bytes(size, '\0');
  for (uint64_t i = 0; i < size; ++i) {
    bytes[i] = static_cast<char>(seed + static_cast<char>((i / 4096 + i) % 23));
  }
  return bytes;
}

// The thaw guard as the capture sees it: it stands by; unless released it thaws the guest and
// removes the freeze record, as the real guard does once the capture is gone.
class FakeWatch final : public internal::FreezeWatch {
 public:
  FakeWatch(FakeAgent* agent, std::string freeze_record)
      : agent_(agent), freeze_record_(std::move(freeze_record)) {}
  ~FakeWatch() override {
    if (released_) return;
    agent_->ThawByGuard();
    ::unlink(freeze_record_.c_str());
  }
  Status Release() override {
    released_ = true;
    return absl::OkStatus();
  }
  pid_t pid() const override { return ::getpid(); }

 private:
  FakeAgent* agent_;
  std::string freeze_record_;
  bool released_ = false;
};

class CaptureUnitTest : public ::testing::Test {
 protected:
  CaptureUnitTest() : faulty_fs_(FileSystem::Posix()), qemu_(kDiskSize) {}

  void SetUp() override {
    repo::InitOptions init;
    init.chunk_size = kChunk;
    ASSERT_TRUE(repo::Repository::Init(Path("repo"), init).ok());
    repo::OpenOptions open;
    open.fs = &faulty_fs_;
    auto repo = repo::Repository::Open(Path("repo"), open);
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = std::move(repo).value();
    auto catalog = catalog::Catalog::Open(Path("catalog.db"));
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = std::move(catalog).value();
    vm::RuntimeOptions options;
    options.catalog_path = Path("catalog.db");
    options.run_root = Path("run");
    runtime_ = std::make_unique<vm::Runtime>(catalog_.get(), options);
    ASSERT_NO_FATAL_FAILURE(AddVm());
    disks_["root"].bytes = Pattern('a', kDiskSize);
    std::fill_n(disks_["root"].bytes.begin() + kChunk, kChunk, '\0');  // a hole
    disks_["data"].bytes = Pattern('A', kDiskSize);
    context_ = {catalog_.get(), runtime_.get(), repo_.get(), Path("catalog.db"), ""};
    request_.vm = "web01";
    request_.agent_timeout = Millis(2000);
    request_.freeze_deadline = Millis(5000);
  }

  std::string Path(const std::string& name) const { return dir_.path() + "/" + name; }

  // A running managed VM with the disks of FakeQemu; this process plays its QEMU (the pid file
  // the runtime checks names it).
  void AddVm() {
    vm_.uuid = vm::NewUuid();
    vm_.name = "web01";
    vm_.state = catalog::PowerState::kRunning;
    for (const char* name : {"root", "data"}) {
      catalog::VolumeRecord volume;
      volume.name = name;
      volume.path = Path(absl::StrCat(name, ".qcow2"));
      volume.format = "qcow2";
      volume.boot = volume.name == "root";
      volume.serial = absl::StrCat(name, "-serial");
      volume.node_name = absl::StrCat(name, "-fmt");
      vm_.volumes.push_back(volume);
    }
    auto id = catalog_->AddVm(vm_);
    ASSERT_TRUE(id.ok()) << id.status();
    vm_.id = *id;
    auto paths = vm::RunPathsFor(vm_, Path("run"));
    ASSERT_TRUE(paths.ok());
    paths_ = *paths;
    ASSERT_TRUE(MakeDirs(paths_.dir).ok());
    ASSERT_TRUE(WriteFileAtomic(paths_.pid_file, absl::StrCat(::getpid(), "\n")).ok());
  }

  StatusOr<std::unique_ptr<block::BlockSource>> Source(const std::string& volume, bool bitmap) {
    const FakeDisk& disk = disks_[volume];
    auto source =
        std::make_unique<testing::FakeBlockSource>(disk.bytes, ExtentsOf(disk, bitmap), bitmap);
    source->fail_at_ = disk.fail_at;
    source->on_read_ = [this, volume](uint64_t offset, uint64_t length) {
      reads_[volume].push_back({offset, length});
    };
    return std::unique_ptr<block::BlockSource>(std::move(source));
  }

  internal::Seams FakeSeams() {
    internal::Seams seams;
    seams.connect_qmp =
        [this](const catalog::VmRecord&) -> StatusOr<std::unique_ptr<qmp::Session>> {
      return qemu_.Connect();
    };
    seams.connect_agent = [this](const catalog::VmRecord&,
                                 Millis) -> StatusOr<std::unique_ptr<qga::Agent>> {
      return agent_.Connect();
    };
    seams.connect_nbd = [this](const std::string&, const std::string& name,
                               const block::ConnectOptions& options) {
      return connect_nbd_ ? connect_nbd_() : Source(name, !options.dirty_bitmap.empty());
    };
    seams.open_image = [this](const std::string& path, const std::string&,
                              const block::ConnectOptions&) {
      return Source(path == vm_.volumes[0].path ? "root" : "data", false);
    };
    seams.start_watch = [this](const ThawGuardOptions& options) {
      return StatusOr<std::unique_ptr<internal::FreezeWatch>>(
          std::make_unique<FakeWatch>(&agent_, options.freeze_record));
    };
    return seams;
  }

  // One capture. After a successful one the disks' writes are in the point: their dirty
  // ranges start anew (QEMU's new bitmap starts at the cut).
  StatusOr<CaptureResult> Capture() {
    reads_.clear();
    auto result = internal::CaptureVmWith(context_, request_, progress_, FakeSeams());
    if (result.ok()) {
      for (auto& [name, disk] : disks_) disk.dirty.clear();
    }
    return result;
  }

  // The guest thawed and its agent free; QEMU's graph as before the capture; no freeze record
  // and no scratch file left.
  void ExpectGuestAndQemuAsBefore() {
    EXPECT_FALSE(agent_.frozen());
    EXPECT_EQ(agent_.open_connections(), 0);
    EXPECT_EQ(qemu_.Leftovers(), "");
    EXPECT_THAT(qemu_.violations(), IsEmpty());
    EXPECT_FALSE(PathExists(paths_.freeze_record));
    std::error_code ignored;
    for (const auto& entry : std::filesystem::directory_iterator(Path("run/capture"), ignored)) {
      EXPECT_EQ(entry.path().extension(), ".lock") << entry.path();
    }
  }

  // Our bitmaps on each disk are exactly `name` (present and recording), or none when empty.
  void ExpectOnlyBitmap(const std::string& name) {
    for (const char* node : {"root-fmt", "data-fmt"}) {
      std::vector<std::string> ours;
      for (const auto& [bitmap, state] : qemu_.nodes_[node].bitmaps) {
        if (bitmap.rfind(kBitmapPrefix, 0) == 0) ours.push_back(bitmap);
      }
      if (name.empty()) {
        EXPECT_THAT(ours, IsEmpty()) << node;
        continue;
      }
      EXPECT_EQ(ours, std::vector<std::string>{name}) << node;
      if (!ours.empty()) {
        EXPECT_TRUE(qemu_.nodes_[node].bitmaps[name].recording) << node;
      }
    }
  }

  // Every volume of `point_id` reads back as the disk's bytes `expected`.
  void ExpectPointHolds(const std::string& point_id,
                        const std::map<std::string, FakeDisk>& expected) {
    for (const auto& [name, disk] : expected) {
      auto volume = repo_->OpenVolume(point_id, name);
      ASSERT_TRUE(volume.ok()) << volume.status();
      std::string read((*volume)->size(), '\0');
      ASSERT_TRUE((*volume)->ReadAt(0, read.size(), read.data()).ok());
      EXPECT_TRUE(read == disk.bytes) << "volume " << name << " differs";
    }
  }

  // The chunks (or with `piece`, the pieces of that size) the stream read of `volume`. Every
  // other read must be the journal check's, a few sectors of a superblock or partition table.
  std::vector<uint64_t> ChunksRead(const std::string& volume, uint64_t piece = kChunk) {
    std::vector<uint64_t> chunks;
    for (const auto& [offset, length] : reads_[volume]) {
      if (length == piece && offset % piece == 0) {
        chunks.push_back(offset / piece);
      } else {
        EXPECT_LE(length, 4096u) << volume << " read at " << offset;
      }
    }
    return chunks;
  }

  std::vector<std::string> PointIds() {
    std::vector<std::string> ids;
    auto points = repo_->ListRecoveryPoints();
    EXPECT_TRUE(points.ok());
    if (points.ok()) {
      for (const repo::Manifest& point : *points) ids.push_back(point.id);
    }
    return ids;
  }

  std::vector<catalog::RecoveryPointRecord> Rows() {
    auto index = catalog::RecoveryPointIndex::Open(catalog_->db());
    EXPECT_TRUE(index.ok());
    auto rows = (*index)->List(vm_.uuid);
    EXPECT_TRUE(rows.ok());
    return rows.ok() ? *rows : std::vector<catalog::RecoveryPointRecord>{};
  }

  // Messages of the VM's events of `kind`, newest first.
  std::vector<std::string> Events(const std::string& kind) {
    std::vector<std::string> messages;
    auto events = catalog_->ListEvents(vm_.id);
    EXPECT_TRUE(events.ok());
    for (const catalog::EventRecord& event : *events) {
      if (event.kind == kind) messages.push_back(event.message);
    }
    return messages;
  }

  // A first, full capture: the base of an incremental, whose bitmap the next capture must keep
  // usable. Returns the point's id.
  std::string CaptureBase() {
    auto base = Capture();
    EXPECT_TRUE(base.ok()) << base.status();
    return base.ok() ? base->point_id : "";
  }

  // The failed capture after `base_id` left no point of its own: the repository and the
  // catalog's rows hold the base only; the event says why.
  void ExpectNothingKept(const std::string& base_id, const Status& failed) {
    EXPECT_EQ(PointIds(), std::vector<std::string>{base_id});
    std::vector<catalog::RecoveryPointRecord> rows = Rows();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].id, base_id);
    ASSERT_FALSE(Events("snapshot.failed").empty());
    EXPECT_EQ(Events("snapshot.failed")[0], failed.message());
  }

  // The failed capture after `base_id` left a failed row (data had moved) with the reason, and
  // nothing in the repository that any point refers to.
  void ExpectFailedPoint(const std::string& base_id, const Status& failed) {
    EXPECT_EQ(PointIds(), std::vector<std::string>{base_id});
    std::vector<catalog::RecoveryPointRecord> rows = Rows();
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[1].state, "failed");
    EXPECT_EQ(rows[1].reason, failed.message());
    EXPECT_FALSE(PathExists(repo_->PointDir(rows[1].id)));
    auto verified = repo_->Verify("");
    ASSERT_TRUE(verified.ok());
    EXPECT_TRUE(verified->ok());
  }

  testing::TempDir dir_;
  FaultInjectionFileSystem faulty_fs_;
  std::unique_ptr<repo::Repository> repo_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<vm::Runtime> runtime_;
  catalog::VmRecord vm_;
  vm::RunPaths paths_;
  CaptureContext context_;
  CaptureRequest request_;
  ProgressFn progress_;
  FakeQemu qemu_;
  FakeAgent agent_;
  std::map<std::string, FakeDisk> disks_;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> reads_;
  std::function<StatusOr<std::unique_ptr<block::BlockSource>>()> connect_nbd_;  // overrides
};

TEST_F(CaptureUnitTest, ApplicationConsistentPointHoldsTheDisksBytes) {
  std::vector<Progress> progress;
  progress_ = [&](const Progress& p) { progress.push_back(p); };
  auto result = Capture();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->consistency, Consistency::kApplication);
  EXPECT_EQ(result->reason, "2 filesystem(s) frozen by guest agent 7.2.22");
  EXPECT_FALSE(result->incremental);
  EXPECT_EQ(result->logical_bytes, 2 * kDiskSize);
  EXPECT_EQ(result->read_bytes, 2 * kDiskSize - kChunk);  // the hole is not read
  ExpectPointHolds(result->point_id, disks_);
  EXPECT_EQ(agent_.freezes(), 1);
  EXPECT_EQ(agent_.thaws(), 1);
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, result->point_id));
  std::vector<catalog::RecoveryPointRecord> rows = Rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].state, "complete");
  EXPECT_EQ(rows[0].consistency, "application");
  EXPECT_THAT(Events("snapshot.created"), ::testing::SizeIs(1));
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().all_done_bytes, progress.back().total_bytes);
  EXPECT_EQ(progress.back().total_bytes, result->read_bytes);
}

TEST_F(CaptureUnitTest, IncrementalReadsOnlyTheDirtyExtents) {
  std::string base_id = CaptureBase();
  std::map<std::string, FakeDisk> at_base = disks_;
  disks_["data"].Write(kChunk + 1000, "changed since the base");
  disks_["root"].Write(3 * kChunk + 5, "x");
  auto result = Capture();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->incremental);
  // Of each disk only the dirty sub-chunk of the changed chunk, a patch of the parent's chunk.
  constexpr uint64_t kSub = repo::internal::kSubChunkSize;
  EXPECT_EQ(result->read_bytes, 2 * kSub);
  EXPECT_EQ(ChunksRead("data", kSub), std::vector<uint64_t>{kChunk / kSub});
  EXPECT_EQ(ChunksRead("root", kSub), std::vector<uint64_t>{3 * kChunk / kSub});
  auto manifest = repo_->GetRecoveryPoint(result->point_id);
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->parent_id, base_id);
  ExpectPointHolds(result->point_id, disks_);
  ExpectPointHolds(base_id, at_base);
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, result->point_id));
}

// A stopped VM goes through the same stream, from its images, and no QMP or agent is asked.
TEST_F(CaptureUnitTest, StoppedVmIsReadFromItsImages) {
  for (const catalog::VolumeRecord& volume : vm_.volumes) {
    ASSERT_TRUE(RunCommandOk({"qemu-img", "create", "-q", "-f", "qcow2", volume.path,
                              absl::StrCat(kDiskSize)},
                             Deadline::In(Millis(30'000)))
                    .ok());
  }
  ASSERT_TRUE(
      catalog_->SetPowerState(vm_.id, catalog::PowerState::kStoppedClean, "guest shut down").ok());
  auto result = Capture();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->consistency, Consistency::kApplication);
  EXPECT_EQ(result->reason, "VM was shut down cleanly by the guest");
  ExpectPointHolds(result->point_id, disks_);
  EXPECT_EQ(qemu_.commands(), 0);
  EXPECT_THAT(agent_.calls(), IsEmpty());
}

TEST_F(CaptureUnitTest, SecondCaptureOfTheVmIsRefusedWhileTheLockIsHeld) {
  ASSERT_TRUE(MakeDirs(Path("run/capture")).ok());
  auto held = FileSystem::Posix()->TryLock(vm::CaptureFilesFor(vm_, Path("run")).lock);
  ASSERT_TRUE(held.ok());
  auto result = Capture();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("another capture of VM 'web01' is running"));
  EXPECT_EQ(qemu_.commands(), 0);
}

// The agent hangs at one preflight call: neither that call nor any later one (the freeze, the
// thaw) gets an answer. `reason`: the point's reason under prefer-app; `refusal`: what require-app
// says. A hang at sync, ping or info is found before anything is touched; one at the freeze
// status or fsinfo (whose answers the capture can do without) only when the freeze times out.
struct Hang {
  const char* name;
  FakeAgent::Call call;
  const char* reason;
  const char* refusal;
  bool found_before_the_cut;
};

constexpr char kFreezeTimedOut[] =
    "guest agent could not freeze: guest agent: no reply within the timeout";
constexpr char kSilentRefused[] =
    "but guest agent did not answer within 2000 ms; nothing was captured";
constexpr char kNotKept[] =
    "could not freeze (guest agent: no reply within the timeout) and "
    "policy require-app forbids a crash-consistent point; nothing was kept";

class AgentHangTest : public CaptureUnitTest, public ::testing::WithParamInterface<Hang> {};

TEST_P(AgentHangTest, PreferAppTakesACrashConsistentPointWithTheReason) {
  agent_.HangFrom(GetParam().call);
  auto result = Capture();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->consistency, Consistency::kCrash);
  EXPECT_EQ(result->reason, GetParam().reason);
  EXPECT_EQ(agent_.freezes(), 0);
  ExpectPointHolds(result->point_id, disks_);
  ExpectGuestAndQemuAsBefore();
}

TEST_P(AgentHangTest, RequireAppRefusesAndKeepsNothing) {
  request_.policy = Policy::kRequireApp;
  agent_.HangFrom(GetParam().call);
  auto result = Capture();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr(GetParam().refusal));
  EXPECT_THAT(PointIds(), IsEmpty());
  EXPECT_THAT(Rows(), IsEmpty());
  EXPECT_THAT(Events("snapshot.failed"), ::testing::ElementsAre(result.status().message()));
  bool touched = std::count(qemu_.log().begin(), qemu_.log().end(), "blockdev-add") > 0;
  EXPECT_EQ(touched, !GetParam().found_before_the_cut);
  EXPECT_EQ(agent_.freezes(), 0);
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap("");
}

INSTANTIATE_TEST_SUITE_P(
    EachPreflightCall, AgentHangTest,
    ::testing::Values(
        Hang{"Sync", FakeAgent::Call::kSync, kSilent, kSilentRefused, true},
        Hang{"Ping", FakeAgent::Call::kPing, kSilent, kSilentRefused, true},
        Hang{
            "Info", FakeAgent::Call::kInfo,
            "guest-info failed: guest agent: no reply within the timeout",
            "but guest-info failed: guest agent: no reply within the timeout; nothing was captured",
            true},
        Hang{"FreezeStatus", FakeAgent::Call::kFreezeStatus, kFreezeTimedOut, kNotKept, false},
        Hang{"GetFsinfo", FakeAgent::Call::kGetFsinfo, kFreezeTimedOut, kNotKept, false}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(CaptureUnitTest, GuestFrozenBySomeoneElseIsLeftToThem) {
  agent_.FreezeByOthers();
  auto result = Capture();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->consistency, Consistency::kCrash);
  EXPECT_THAT(result->reason, HasSubstr("already frozen by someone else"));
  EXPECT_TRUE(agent_.frozen());
  EXPECT_EQ(agent_.thaws(), 0);
  EXPECT_EQ(qemu_.Leftovers(), "");
}

TEST_F(CaptureUnitTest, FreezeErrorMeansACrashConsistentPointCutWithTheVcpusPaused) {
  agent_.FailNext(FakeAgent::Call::kFreeze,
                  absl::InternalError("fsfreeze hook has failed with status 1"),
                  /*freeze_anyway=*/true);
  auto result = Capture();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->consistency, Consistency::kCrash);
  EXPECT_EQ(result->reason, "guest agent could not freeze: fsfreeze hook has failed with status 1");
  EXPECT_EQ(std::count(qemu_.log().begin(), qemu_.log().end(), "stop"), 1);
  EXPECT_EQ(std::count(qemu_.log().begin(), qemu_.log().end(), "cont"), 1);
  ExpectPointHolds(result->point_id, disks_);
  ExpectGuestAndQemuAsBefore();  // also thawed what the failed freeze froze
}

TEST_F(CaptureUnitTest, FreezeErrorUnderRequireAppKeepsNothing) {
  std::string base_id = CaptureBase();
  request_.policy = Policy::kRequireApp;
  agent_.FailNext(FakeAgent::Call::kFreeze,
                  absl::InternalError("fsfreeze hook has failed with status 1"),
                  /*freeze_anyway=*/true);
  auto result = Capture();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("could not freeze (fsfreeze hook"));
  EXPECT_THAT(result.status().message(), HasSubstr("nothing was kept"));
  ExpectNothingKept(base_id, result.status());
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, base_id));
}

// The guest stays frozen after our thaw failed: the thaw guard (never released) thaws it.
TEST_F(CaptureUnitTest, ThawErrorLeavesTheGuestToTheThawGuard) {
  std::string base_id = CaptureBase();
  agent_.FailNext(FakeAgent::Call::kThaw, absl::DeadlineExceededError("guest-fsfreeze-thaw"));
  auto result = Capture();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(result.status().message(), HasSubstr("thaw failed"));
  EXPECT_THAT(result.status().message(), HasSubstr("the thaw guard takes over"));
  EXPECT_EQ(agent_.thaws(), 2);  // the base's, and the guard's
  ExpectNothingKept(base_id, result.status());
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, base_id));
}

// One QMP command of the cut fails: the first `command` whose arguments contain `part`.
// `frozen`: under the agent's freeze, else with the vCPUs paused (crash-only).
struct CutStep {
  const char* name;
  const char* command;
  const char* part;
  bool frozen;
};

class CutFailureTest : public CaptureUnitTest, public ::testing::WithParamInterface<CutStep> {};

TEST_P(CutFailureTest, PointFailsGuestThawedGraphAndBitmapsAsBefore) {
  if (!GetParam().frozen) request_.policy = Policy::kCrashOnly;
  std::string base_id = CaptureBase();
  disks_["data"].Write(2 * kChunk, "written after the base");
  qemu_.FailWhen(GetParam().command, GetParam().part);
  auto result = Capture();
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(),
              HasSubstr(absl::StrCat("injected failure of '", GetParam().command, "'")));
  ExpectNothingKept(base_id, result.status());
  EXPECT_EQ(agent_.freezes(), agent_.thaws());
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, base_id));
  // The next capture is still an incremental, and still sees the write.
  auto next = Capture();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(next->incremental);
  ExpectPointHolds(next->point_id, disks_);
}

INSTANTIATE_TEST_SUITE_P(
    EachCommand, CutFailureTest,
    ::testing::Values(CutStep{"FrozenScratch", "blockdev-add", "\"driver\":\"qcow2\"", true},
                      CutStep{"FrozenFilter", "blockdev-add", "copy-before-write", true},
                      CutStep{"FrozenBitmaps", "transaction", "block-dirty-bitmap-add", true},
                      CutStep{"FrozenSwitch", "qom-set", "\"value\":\"sp-c", true},
                      CutStep{"FrozenAccess", "blockdev-add", "snapshot-access", true},
                      CutStep{"FrozenServer", "nbd-server-start", "", true},
                      CutStep{"FrozenExport", "block-export-add", "", true},
                      CutStep{"PausedScratch", "blockdev-add", "\"driver\":\"qcow2\"", false},
                      CutStep{"PausedFilter", "blockdev-add", "copy-before-write", false},
                      CutStep{"PausedStop", "stop", "", false},
                      CutStep{"PausedBitmaps", "transaction", "block-dirty-bitmap-add", false},
                      CutStep{"PausedSwitch", "qom-set", "\"value\":\"sp-c", false},
                      CutStep{"PausedCont", "cont", "", false},
                      CutStep{"PausedAccess", "blockdev-add", "snapshot-access", false},
                      CutStep{"PausedServer", "nbd-server-start", "", false},
                      CutStep{"PausedExport", "block-export-add", "", false}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST_F(CaptureUnitTest, StreamErrorLeavesAFailedPointAndNothingReferenced) {
  std::string base_id = CaptureBase();
  disks_["root"].Write(5, "new");
  disks_["data"].Write(kChunk, std::string(kChunk, 'n'));
  disks_["data"].Write(2 * kChunk, "more");
  disks_["data"].fail_at = 2 * kChunk + 7;  // after the root's chunk and one of data's
  auto result = Capture();
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr("read failed at offset"));
  ExpectFailedPoint(base_id, result.status());
  EXPECT_EQ(Events("snapshot.failed")[0], result.status().message());
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, base_id));
  disks_["data"].fail_at = UINT64_MAX;
  auto next = Capture();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(next->incremental);
  ExpectPointHolds(next->point_id, disks_);
}

TEST_F(CaptureUnitTest, CancelDuringTheStreamDiscardsThePointAndKeepsTheBase) {
  std::string base_id = CaptureBase();
  disks_["data"].Write(kChunk, std::string(kChunk, 'n'));
  std::atomic<bool> cancel{false};
  request_.cancel = &cancel;
  progress_ = [&](const Progress& p) {
    if (p.all_done_bytes > 0) cancel = true;  // once the first bytes moved
  };
  auto result = Capture();
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(absl::IsCancelled(result.status())) << result.status();
  ExpectFailedPoint(base_id, result.status());
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, base_id));
  request_.cancel = nullptr;
  progress_ = nullptr;
  auto next = Capture();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(next->incremental);
}

// The repository fails under the capture: a chunk cannot be stored, or the manifest (the commit
// point) cannot be written.
struct StorageFault {
  const char* name;
  FsOp op;
  const char* path_part;
  const char* error;
};

class StorageFailureTest : public CaptureUnitTest,
                           public ::testing::WithParamInterface<StorageFault> {};

TEST_P(StorageFailureTest, PointFailsAndNothingIsReferenced) {
  std::string base_id = CaptureBase();
  disks_["data"].Write(kChunk, std::string(kChunk, 'n'));
  faulty_fs_.InjectError(GetParam().op, absl::ResourceExhaustedError(GetParam().error),
                         GetParam().path_part);
  auto result = Capture();
  faulty_fs_.ClearFaults();
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(), HasSubstr(GetParam().error));
  ExpectFailedPoint(base_id, result.status());
  ExpectGuestAndQemuAsBefore();
  ExpectOnlyBitmap(absl::StrCat(kBitmapPrefix, base_id));
}

INSTANTIATE_TEST_SUITE_P(EachCommitStep, StorageFailureTest,
                         ::testing::Values(StorageFault{"ChunkWrite", FsOp::kAppend, "/chunks/",
                                                        "No space left on device"},
                                           StorageFault{"ManifestWrite", FsOp::kRename,
                                                        "manifest.json", "manifest not written"}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// QEMU ends mid-capture: the error says the VM stopped, not what broke because of it.
TEST_F(CaptureUnitTest, VmStoppingDuringTheCaptureDiscardsThePoint) {
  connect_nbd_ = [&]() -> StatusOr<std::unique_ptr<block::BlockSource>> {
    ::unlink(paths_.pid_file.c_str());
    return absl::UnavailableError("QEMU went away");
  };
  auto result = Capture();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(result.status().message(), HasSubstr("VM 'web01' stopped during the capture"));
  EXPECT_THAT(PointIds(), IsEmpty());
  EXPECT_THAT(Rows(), IsEmpty());
  EXPECT_FALSE(agent_.frozen());
}

}  // namespace
}  // namespace sp::capture
