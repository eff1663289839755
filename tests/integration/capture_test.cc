// Snapshots of the real guest under real QEMU (TCG) with the real guest agent, a writer running
// inside the guest during the captures, into a real repository.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "block/fs_probe.h"
#include "catalog/recovery_points.h"
#include "platform/files.h"
#include "tests/integration/guest.h"

namespace sp {
namespace {

using catalog::PowerState;
using testing::Contains;
using testing::GuestEnv;
using testing::GuestWorld;

constexpr Millis kBootTimeout{90'000};

class CaptureTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(GuestEnv().empty()) << "test guest unavailable"; }

  catalog::VmRecord Boot(const std::string& name = "web01") {
    auto vm = world_.BootGuest(name, kBootTimeout);
    EXPECT_TRUE(vm.ok()) << vm.status();
    return vm.ok() ? *vm : catalog::VmRecord{};
  }

  // Runs a shell command in the guest; expects it to succeed and returns its output.
  std::string Guest(const catalog::VmRecord& vm, const std::string& command) {
    auto run = world_.Shell(vm, command);
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return "";
    EXPECT_EQ(run->exit_code, 0) << command << ": " << run->err;
    return run->out;
  }

  // Starts a writer in the guest that keeps writing to the data disk until the VM stops.
  void StartWriter(const catalog::VmRecord& vm) {
    auto agent = world_.runtime().ConnectAgent(vm);
    ASSERT_TRUE(agent.ok());
    auto pid = (*agent)->Exec(
        "/bin/sh",
        {"-c",
         "i=0; while :; do dd if=/dev/urandom of=/data/writer.$((i % 4)) bs=64k count=8 "
         "conv=fsync 2>/dev/null; i=$((i+1)); done"},
        false, Millis(10'000));
    ASSERT_TRUE(pid.ok()) << pid.status();
  }

  StatusOr<capture::CaptureResult> Snapshot(const std::string& vm,
                                            std::optional<capture::Policy> policy = {},
                                            bool full = false) {
    capture::CaptureRequest request;
    request.vm = vm;
    request.policy = policy;
    request.force_full = full;
    return world_.app().CreateSnapshot(request, nullptr);
  }

  // A volume of a recovery point, written out as a raw image.
  std::string Materialize(const std::string& point, const std::string& volume) {
    std::string path =
        absl::StrCat(world_.dir(), "/", point.substr(point.size() - 8), "-", volume, ".raw");
    auto repo = world_.app().Repo();
    EXPECT_TRUE(repo.ok()) << repo.status();
    auto reader = (*repo)->OpenVolume(point, volume);
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return path;
    std::ofstream out(path, std::ios::binary);
    std::string chunk((*reader)->chunk_size(), '\0');
    for (uint64_t offset = 0; offset < (*reader)->size(); offset += chunk.size()) {
      uint64_t length = std::min<uint64_t>(chunk.size(), (*reader)->size() - offset);
      EXPECT_TRUE((*reader)->ReadAt(offset, length, chunk.data()).ok());
      out.write(chunk.data(), static_cast<std::streamsize>(length));
    }
    return path;
  }

  // sha256 of a file inside an ext4 image, read with debugfs (no mount).
  std::string HashInImage(const std::string& image, const std::string& file) {
    std::string dumped = image + ".dump";
    auto dump = RunCommand({"debugfs", "-R", absl::StrCat("dump ", file, " ", dumped), image},
                           Deadline::In(Millis(60'000)));
    EXPECT_TRUE(dump.ok());
    auto hash = RunCommandOk({"sha256sum", dumped}, Deadline::In(Millis(60'000)));
    return hash.ok() ? std::string(absl::StrSplit(*hash, ' ').begin()->data(), 64) : "";
  }

  std::vector<std::string> HookLines(const catalog::VmRecord& vm) {
    std::string log =
        Guest(vm, absl::StrCat("cat ", GuestEnv().at("GUEST_HOOK_LOG"), " 2>/dev/null || true"));
    return absl::StrSplit(log, '\n', absl::SkipEmpty());
  }

  size_t CompletePoints() {
    auto repo = world_.app().Repo();
    auto points = (*repo)->ListRecoveryPoints();
    return points.ok() ? points->size() : 0;
  }

  GuestWorld world_;
};

TEST_F(CaptureTest, ApplicationConsistentWithWriterRunning) {
  catalog::VmRecord vm = Boot();
  std::string hash = Guest(vm,
                           "dd if=/dev/urandom of=/data/before.bin bs=1M count=3 2>/dev/null"
                           " && sync && sha256sum /data/before.bin");
  ASSERT_GE(hash.size(), 64u);
  StartWriter(vm);
  auto result = Snapshot("web01");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->consistency, capture::Consistency::kApplication) << result->reason;
  EXPECT_TRUE(Contains(result->reason, "frozen by guest agent")) << result->reason;
  EXPECT_GT(result->timings.frozen_window_ms, 0);
  EXPECT_LT(result->timings.frozen_window_ms, 5000);
  std::cerr << "frozen window " << result->timings.frozen_window_ms << " ms (freeze "
            << result->timings.freeze_ms << ", cut " << result->timings.qmp_ms << ", thaw "
            << result->timings.thaw_ms << ")\n";

  // The guest's hook ran for the freeze and the thaw.
  std::vector<std::string> hook = HookLines(vm);
  ASSERT_EQ(hook.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(hook[0], "freeze "));
  EXPECT_TRUE(absl::StartsWith(hook[1], "thaw "));

  // The captured data volume: clean ext4 journal, and the file written before the freeze.
  std::string data = Materialize(result->point_id, "data");
  auto source = block::OpenImage(data, "raw");
  ASSERT_TRUE(source.ok()) << source.status();
  auto filesystems = block::ProbeExt4(**source);
  ASSERT_TRUE(filesystems.ok());
  ASSERT_EQ(filesystems->size(), 1u);
  EXPECT_FALSE((*filesystems)[0].needs_recovery);
  source->reset();
  EXPECT_EQ(HashInImage(data, "/before.bin"), hash.substr(0, 64));

  auto shown = world_.Cli({"snapshot", "show", result->point_id, "--json"});
  ASSERT_EQ(shown->status.code, 0) << shown->output;
  auto manifest = nlohmann::json::parse(shown->output);
  EXPECT_EQ(manifest["consistency"], "application");
  EXPECT_EQ(manifest["power_state"], "running");
  EXPECT_EQ(manifest["vm"]["name"], "web01");
  EXPECT_GT(manifest["timings_ms"]["frozen_window"].get<double>(), 0);
}

TEST_F(CaptureTest, CrashOnlyAndRequireAppWithoutAgent) {
  catalog::VmRecord vm = Boot();
  StartWriter(vm);
  auto crash = Snapshot("web01", capture::Policy::kCrashOnly);
  ASSERT_TRUE(crash.ok()) << crash.status();
  EXPECT_EQ(crash->consistency, capture::Consistency::kCrash);
  EXPECT_TRUE(Contains(crash->reason, "crash-only")) << crash->reason;
  EXPECT_TRUE(HookLines(vm).empty()) << "crash-only must never freeze";

  // A VM whose agent never answers (its disk boots nothing).
  std::string blank = world_.dir() + "/blank.qcow2";
  ASSERT_TRUE(RunCommandOk({"qemu-img", "create", "-q", "-f", "qcow2", blank, "64M"},
                           Deadline::In(Millis(30'000)))
                  .ok());
  catalog::VmRecord draft;
  draft.name = "silent";
  draft.memory_mib = 128;
  draft.volumes = {{"root", blank, "", true, "", "", -1}};
  ASSERT_TRUE(world_.app().DefineVm(draft).ok());
  ASSERT_TRUE(world_.app().StartVm("silent").ok());
  auto fallback = Snapshot("silent");
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_EQ(fallback->consistency, capture::Consistency::kCrash);
  EXPECT_TRUE(Contains(fallback->reason, "did not answer within")) << fallback->reason;

  size_t before = CompletePoints();
  auto refused = world_.Cli({"snapshot", "create", "silent", "--consistency", "require-app"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status.code, 4) << refused->output;
  EXPECT_TRUE(Contains(refused->output, "require-app")) << refused->output;
  EXPECT_EQ(CompletePoints(), before) << "a refused snapshot must store nothing";
}

TEST_F(CaptureTest, StoppedVmsCleanAndDirty) {
  catalog::VmRecord vm = Boot();
  ASSERT_TRUE(world_.app().StopVm("web01", Millis(90'000)).ok());
  auto clean = Snapshot("web01");
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_EQ(clean->power_state, "stopped-clean");
  EXPECT_EQ(clean->consistency, capture::Consistency::kApplication) << clean->reason;

  ASSERT_TRUE(world_.app().StartVm("web01").ok());
  ASSERT_TRUE(world_.WaitForAgent(vm, kBootTimeout).ok());
  auto pid = world_.runtime().QemuPid(vm);
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(SendSignal(*pid, SIGKILL).ok());
  ASSERT_TRUE(world_.runtime().WaitUntilStopped(vm, Deadline::In(Millis(30'000))).ok());
  auto dirty = Snapshot("web01");
  ASSERT_TRUE(dirty.ok()) << dirty.status();
  EXPECT_EQ(dirty->power_state, "stopped-dirty");
  EXPECT_EQ(dirty->consistency, capture::Consistency::kCrash);
  EXPECT_TRUE(Contains(dirty->reason, "not shut down cleanly")) << dirty->reason;
  // And the same under require-app is refused, storing nothing.
  size_t before = CompletePoints();
  EXPECT_EQ(Snapshot("web01", capture::Policy::kRequireApp).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CompletePoints(), before);
}

TEST_F(CaptureTest, IncrementalEqualsFullAndKillNineForcesFull) {
  catalog::VmRecord vm = Boot();
  auto first = Snapshot("web01");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->incremental);
  Guest(vm, "dd if=/dev/urandom of=/data/changed.bin bs=1M count=5 2>/dev/null && sync");
  // Pause the guest so that an incremental and a full see the very same disks.
  {
    auto qmp = world_.runtime().ConnectQmp(vm);
    ASSERT_TRUE(qmp.ok());
    ASSERT_TRUE((*qmp)->Execute("stop").ok());
  }
  auto incremental = Snapshot("web01", capture::Policy::kCrashOnly);
  ASSERT_TRUE(incremental.ok()) << incremental.status();
  EXPECT_TRUE(incremental->incremental);
  EXPECT_LT(incremental->read_bytes, first->read_bytes);
  auto full = Snapshot("web01", capture::Policy::kCrashOnly, /*full=*/true);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_FALSE(full->incremental);
  for (const char* volume : {"root", "data"}) {
    std::string a = Materialize(incremental->point_id, volume);
    std::string b = Materialize(full->point_id, volume);
    auto same = RunCommand({"cmp", a, b}, Deadline::In(Millis(60'000)));
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(same->status.code, 0) << volume << ": " << same->output;
  }
  // After kill -9 of QEMU the bitmaps are inconsistent or gone: the next capture is a full.
  auto pid = world_.runtime().QemuPid(vm);
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(SendSignal(*pid, SIGKILL).ok());
  ASSERT_TRUE(world_.runtime().WaitUntilStopped(vm, Deadline::In(Millis(30'000))).ok());
  ASSERT_TRUE(world_.app().StartVm("web01").ok());
  ASSERT_TRUE(world_.WaitForAgent(vm, kBootTimeout).ok());
  auto after_crash = Snapshot("web01");
  ASSERT_TRUE(after_crash.ok()) << after_crash.status();
  EXPECT_FALSE(after_crash->incremental);
  std::string notes = absl::StrJoin(after_crash->notes, "; ");
  EXPECT_TRUE(Contains(notes, "inconsistent") || Contains(notes, "gone")) << notes;
}

// Small writes scattered over a file become patches (only the dirty sub-chunks read and stored,
// the index's composites over the parent's chunks), and two incrementals later the point still
// restores byte for byte as a full of the same disks.
TEST_F(CaptureTest, ScatteredWritesBecomePatchesThatRestoreAsAFull) {
  catalog::VmRecord vm = Boot();
  Guest(vm, "dd if=/dev/urandom of=/data/scattered.bin bs=1M count=8 2>/dev/null && sync");
  auto first = Snapshot("web01", capture::Policy::kCrashOnly);
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string writes =
      "for i in 0 1 2 3 4 5; do dd if=/dev/urandom of=/data/scattered.bin bs=4k count=1 "
      "seek=$((i * 337 + SEED)) conv=notrunc 2>/dev/null; done; sync";
  Guest(vm, absl::StrReplaceAll(writes, {{"SEED", "5"}}));
  auto second = Snapshot("web01", capture::Policy::kCrashOnly);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->incremental);
  Guest(vm, absl::StrReplaceAll(writes, {{"SEED", "101"}}));
  {
    auto qmp = world_.runtime().ConnectQmp(vm);
    ASSERT_TRUE(qmp.ok());
    ASSERT_TRUE((*qmp)->Execute("stop").ok());
  }
  auto third = Snapshot("web01", capture::Policy::kCrashOnly);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_TRUE(third->incremental);
  EXPECT_LT(third->read_bytes, first->read_bytes / 4);
  auto full = Snapshot("web01", capture::Policy::kCrashOnly, /*full=*/true);
  ASSERT_TRUE(full.ok()) << full.status();

  auto repo = world_.app().Repo();
  ASSERT_TRUE(repo.ok());
  auto manifest = (*repo)->GetRecoveryPoint(third->point_id);
  ASSERT_TRUE(manifest.ok());
  size_t overrides = 0;
  for (const repo::ManifestVolume& volume : manifest->volumes) {
    auto index = (*repo)->LoadIndex(*manifest, volume);
    ASSERT_TRUE(index.ok()) << index.status();
    overrides += index->overrides.size();
  }
  EXPECT_GE(overrides, 6u);  // at least the file's sub-chunks
  for (const char* volume : {"root", "data"}) {
    std::string a = Materialize(third->point_id, volume);
    std::string b = Materialize(full->point_id, volume);
    auto same = RunCommand({"cmp", a, b}, Deadline::In(Millis(60'000)));
    ASSERT_TRUE(same.ok());
    EXPECT_EQ(same->status.code, 0) << volume << ": " << same->output;
  }
  auto report = (*repo)->Verify("");
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok());
}

TEST_F(CaptureTest, KilledCaptureWhileFrozenIsThawedByTheGuard) {
  catalog::VmRecord vm = Boot();
  StartWriter(vm);
  std::string err = world_.dir() + "/capture.err";
  SpawnOptions spawn;
  spawn.stdout_path = spawn.stderr_path = err;
  spawn.extra_env = {{"STILLPOINT_HOME", world_.paths().home},
                     {"STILLPOINT_RUN_DIR", world_.paths().run_root},
                     {"STILLPOINT_FAULT_AT", "cut.frozen:hang"}};
  auto capture = Spawn(
      {testing::StillpointBinary(), "snapshot", "create", "web01", "--freeze-deadline-ms", "30000"},
      spawn);
  ASSERT_TRUE(capture.ok());
  Deadline frozen = Deadline::In(Millis(60'000));
  while (!Contains(ReadFile(err).value_or(""), "fault point 'cut.frozen' reached") &&
         !frozen.Expired()) {
    std::this_thread::sleep_for(Millis(50));
  }
  ASSERT_FALSE(frozen.Expired()) << ReadFile(err).value_or("");
  auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(SendSignal(*capture, SIGKILL).ok());
  (void)WaitChild(*capture, Deadline::In(Millis(10'000)));
  // The guard thaws well within the deadline and records it.
  Deadline thawed = Deadline::In(Millis(30'000));
  bool recorded = false;
  while (!recorded && !thawed.Expired()) {
    auto events = world_.catalog().ListEvents(vm.id);
    ASSERT_TRUE(events.ok()) << events.status();
    for (const auto& event : *events) recorded |= event.kind == "agent.thawed-by-guard";
    if (!recorded) std::this_thread::sleep_for(Millis(50));
  }
  ASSERT_TRUE(recorded);
  std::cerr << "guest thawed " << MillisSince(killed_at) << " ms after the capture was killed\n";
  // The guest's writes go on.
  std::string after = Guest(vm, "echo after > /data/after.txt && sync && cat /data/after.txt");
  EXPECT_EQ(after, "after\n");
  std::vector<std::string> hook = HookLines(vm);
  ASSERT_FALSE(hook.empty());
  EXPECT_TRUE(absl::StartsWith(hook.back(), "thaw ")) << absl::StrJoin(hook, "\n");
  // The next capture of the VM works, and records the killed one as failed.
  auto next = Snapshot("web01");
  ASSERT_TRUE(next.ok()) << next.status();
  auto index = catalog::RecoveryPointIndex::Open(world_.catalog().db());
  ASSERT_TRUE(index.ok());
  auto points = (*index)->List();
  ASSERT_TRUE(points.ok());
  ASSERT_EQ(points->size(), 2u);
  EXPECT_EQ((*points)[0].state, "failed");
  EXPECT_TRUE(Contains((*points)[0].reason, "ended before finishing")) << (*points)[0].reason;
  EXPECT_EQ((*points)[1].state, "complete");
}

TEST_F(CaptureTest, HungCaptureIsKilledAndTheGuestThawedAtTheDeadline) {
  catalog::VmRecord vm = Boot();
  std::string err = world_.dir() + "/hung.err";
  SpawnOptions spawn;
  spawn.stdout_path = spawn.stderr_path = err;
  spawn.extra_env = {{"STILLPOINT_HOME", world_.paths().home},
                     {"STILLPOINT_RUN_DIR", world_.paths().run_root},
                     {"STILLPOINT_FAULT_AT", "cut.frozen:hang"}};
  auto hung = Spawn(
      {testing::StillpointBinary(), "snapshot", "create", "web01", "--freeze-deadline-ms", "3000"},
      spawn);
  ASSERT_TRUE(hung.ok());
  auto start = std::chrono::steady_clock::now();
  auto ended = WaitChild(*hung, Deadline::In(Millis(30'000)));
  ASSERT_TRUE(ended.ok() && ended->has_value()) << "the hung capture was not killed";
  EXPECT_TRUE((*ended)->signaled);
  EXPECT_LT(MillisSince(start), 20'000);
  Deadline thawed = Deadline::In(Millis(30'000));
  bool recorded = false;
  while (!recorded && !thawed.Expired()) {
    auto events = world_.catalog().ListEvents(vm.id);
    ASSERT_TRUE(events.ok()) << events.status();
    for (const auto& event : *events) {
      recorded |= event.kind == "agent.thawed-by-guard" && Contains(event.message, "deadline");
    }
    if (!recorded) std::this_thread::sleep_for(Millis(50));
  }
  EXPECT_TRUE(recorded);
  EXPECT_EQ(Guest(vm, "echo ok > /data/ok.txt && cat /data/ok.txt"), "ok\n");
}

TEST_F(CaptureTest, QemuKilledMidStreamDiscardsThePoint) {
  catalog::VmRecord vm = Boot();
  std::string out = world_.dir() + "/slow.out";
  SpawnOptions spawn;
  spawn.stdout_path = spawn.stderr_path = out;
  spawn.extra_env = {{"STILLPOINT_HOME", world_.paths().home},
                     {"STILLPOINT_RUN_DIR", world_.paths().run_root},
                     {"STILLPOINT_FAULT_AT", "stream.chunk:delay=100"}};
  auto capture = Spawn({testing::StillpointBinary(), "snapshot", "create", "web01"}, spawn);
  ASSERT_TRUE(capture.ok());
  auto index = catalog::RecoveryPointIndex::Open(world_.catalog().db());
  ASSERT_TRUE(index.ok());
  Deadline started = Deadline::In(Millis(60'000));
  bool streaming = false;
  while (!streaming && !started.Expired()) {
    auto points = (*index)->List();
    ASSERT_TRUE(points.ok()) << points.status();
    for (const auto& point : *points) streaming |= point.state == "in-progress";
    if (!streaming) std::this_thread::sleep_for(Millis(50));
  }
  ASSERT_TRUE(streaming);
  std::this_thread::sleep_for(Millis(1000));
  auto pid = world_.runtime().QemuPid(vm);
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(SendSignal(*pid, SIGKILL).ok());
  auto ended = WaitChild(*capture, Deadline::In(Millis(60'000)));
  ASSERT_TRUE(ended.ok() && ended->has_value());
  EXPECT_FALSE((*ended)->success());
  std::string output = ReadFile(out).value_or("");
  EXPECT_TRUE(Contains(output, "discarded")) << output;
  EXPECT_EQ(CompletePoints(), 0u);
  auto points = (*index)->List();
  ASSERT_EQ(points->size(), 1u);
  EXPECT_EQ((*points)[0].state, "failed");
  auto verify = (*world_.app().Repo())->Verify("");
  ASSERT_TRUE(verify.ok()) << verify.status();
  EXPECT_TRUE(verify->ok());
  // The VM's disks stay usable: it starts again and a snapshot works.
  ASSERT_TRUE(world_.app().StartVm("web01").ok());
  ASSERT_TRUE(world_.WaitForAgent(vm, kBootTimeout).ok());
  auto again = Snapshot("web01");
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(CaptureTest, RefusalsBeforeAnyFreeze) {
  catalog::VmRecord vm = Boot();
  auto no_boot = world_.Cli({"snapshot", "create", "web01", "--volume", "data"});
  EXPECT_EQ(no_boot->status.code, 2) << no_boot->output;
  EXPECT_TRUE(Contains(no_boot->output, "boot volume 'root'")) << no_boot->output;

  auto limit = world_.Cli({"vm", "set-limit", "web01", "1M"});
  ASSERT_EQ(limit->status.code, 0) << limit->output;
  auto over = world_.Cli({"snapshot", "create", "web01"});
  EXPECT_EQ(over->status.code, 9) << over->output;
  EXPECT_TRUE(Contains(over->output, "set-limit")) << over->output;
  ASSERT_EQ(world_.Cli({"vm", "set-limit", "web01", "none"})->status.code, 0);

  ASSERT_EQ(world_.Cli({"config", "set", "snapshots.enabled", "false"})->status.code, 0);
  auto disabled = world_.Cli({"snapshot", "create", "web01"});
  EXPECT_EQ(disabled->status.code, 4) << disabled->output;
  EXPECT_TRUE(Contains(disabled->output, "disabled")) << disabled->output;
  EXPECT_TRUE(HookLines(vm).empty()) << "no refused snapshot may freeze the guest";
  EXPECT_EQ(CompletePoints(), 0u);
  ASSERT_EQ(world_.Cli({"config", "set", "snapshots.enabled", "true"})->status.code, 0);
  auto ok = world_.Cli({"snapshot", "create", "web01", "--json"});
  EXPECT_EQ(ok->status.code, 0) << ok->output;
}

TEST_F(CaptureTest, FreezeRefusalIsAnEventAndAFrozenGuestIsNamed) {
  catalog::VmRecord vm = Boot();
  // The main fsfreeze hook fails: the agent refuses the freeze.
  Guest(vm,
        "cp /etc/qemu/fsfreeze-hook /etc/qemu/fsfreeze-hook.orig && "
        "printf '#!/bin/sh\\n[ \"$1\" = freeze ] && exit 1\\nexit 0\\n' "
        "> /etc/qemu/fsfreeze-hook && chmod +x /etc/qemu/fsfreeze-hook");
  auto refused = world_.Cli({"snapshot", "create", "web01", "--consistency", "require-app"});
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(refused->status.code, 4) << refused->output;
  EXPECT_TRUE(Contains(refused->output, "nothing was kept")) << refused->output;
  auto index = catalog::RecoveryPointIndex::Open(world_.catalog().db());
  ASSERT_TRUE(index.ok());
  auto points = (*index)->List();
  ASSERT_TRUE(points.ok());
  EXPECT_TRUE(points->empty()) << "a refused capture is not a recovery point";
  auto events = world_.catalog().ListEvents(vm.id);
  ASSERT_TRUE(events.ok());
  bool recorded = false;
  for (const auto& event : *events) {
    recorded |= event.kind == "snapshot.failed" && Contains(event.message, "require-app");
  }
  EXPECT_TRUE(recorded) << "the refusal is an event";
  // prefer-app goes on crash-consistent and says why.
  auto fallback = Snapshot("web01");
  ASSERT_TRUE(fallback.ok()) << fallback.status();
  EXPECT_EQ(fallback->consistency, capture::Consistency::kCrash);
  EXPECT_TRUE(Contains(fallback->reason, "could not freeze")) << fallback->reason;
  Guest(vm, "mv /etc/qemu/fsfreeze-hook.orig /etc/qemu/fsfreeze-hook");

  // Frozen by an administrator: named as such, and left frozen.
  auto frozen = world_.Cli({"vm", "agent", "freeze", "web01"});
  ASSERT_EQ(frozen->status.code, 0) << frozen->output;
  auto while_frozen = Snapshot("web01");
  ASSERT_TRUE(while_frozen.ok()) << while_frozen.status();
  EXPECT_EQ(while_frozen->consistency, capture::Consistency::kCrash);
  EXPECT_TRUE(Contains(while_frozen->reason, "already frozen by someone else"))
      << while_frozen->reason;
  auto status = world_.Cli({"vm", "agent", "status", "web01"});
  EXPECT_TRUE(Contains(status->output, "frozen")) << status->output;
  EXPECT_FALSE(Contains(status->output, "thawed")) << status->output;
  ASSERT_EQ(world_.Cli({"vm", "agent", "thaw", "web01"})->status.code, 0);
}

// A repository on a full disk: the capture fails with the out-of-space code and a message that
// says so, keeps nothing half-written, and the repository verifies clean.
TEST_F(CaptureTest, FullDiskFailsWithOutOfSpace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  std::string repo = world_.paths().home + "/repo";
  ASSERT_TRUE(MakeDirs(repo, 0700).ok());
  auto mounted = RunCommandOk({"mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", repo},
                              Deadline::In(Millis(30'000)));
  if (!mounted.ok()) GTEST_SKIP() << "cannot mount tmpfs here: " << mounted.status();
  auto unmount = absl::MakeCleanup([&] {
    (void)RunCommand({"umount", "-l", repo}, Deadline::In(Millis(30'000)));
  });
  ASSERT_EQ(world_.Cli({"repo", "init", repo})->status.code, 0);
  // A stopped VM whose data volume holds 16 MiB that neither compress nor deduplicate.
  std::string noise = world_.dir() + "/noise.raw", data = world_.dir() + "/noise.qcow2";
  ASSERT_TRUE(RunCommandOk({"sh", "-c", "head -c 16M /dev/urandom > " + noise},
                           Deadline::In(Millis(30'000)))
                  .ok());
  ASSERT_TRUE(RunCommandOk({"qemu-img", "convert", "-O", "qcow2", noise, data},
                           Deadline::In(Millis(30'000)))
                  .ok());
  std::string root = world_.CopyImage("GUEST_ROOT_IMAGE", "big-root.qcow2");
  auto defined =
      world_.Cli({"vm", "define", "big", "--volume", absl::StrCat("name=root,path=", root, ",boot"),
                  "--volume", absl::StrCat("name=data,path=", data)});
  ASSERT_EQ(defined->status.code, 0) << defined->output;
  auto full = world_.Cli({"snapshot", "create", "big"});
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->status.code, 9) << full->output;
  EXPECT_TRUE(Contains(full->output, "space")) << full->output;
  auto verify = world_.Cli({"repo", "verify"});
  EXPECT_EQ(verify->status.code, 0) << verify->output;
}

TEST_F(CaptureTest, ProgressCountsWhatIsRead) {
  Boot();
  for (bool incremental : {false, true}) {
    std::vector<capture::Progress> seen;
    capture::CaptureRequest request;
    request.vm = "web01";
    auto point = world_.app().CreateSnapshot(
        request, [&](const capture::Progress& progress) { seen.push_back(progress); });
    ASSERT_TRUE(point.ok()) << point.status();
    ASSERT_EQ(point->incremental, incremental);
    ASSERT_FALSE(seen.empty());
    uint64_t total = seen.front().total_bytes;
    for (size_t i = 0; i < seen.size(); ++i) {
      EXPECT_EQ(seen[i].total_bytes, total);
      EXPECT_LE(seen[i].all_done_bytes, total);
      if (i > 0) {
        EXPECT_GE(seen[i].all_done_bytes, seen[i - 1].all_done_bytes);
      }
    }
    EXPECT_EQ(seen.back().all_done_bytes, total) << "progress ends at its total";
    // The guest's disks are mostly holes: the total is what is read, not their virtual size.
    EXPECT_LT(total, point->logical_bytes / 4) << "incremental=" << incremental;
    EXPECT_LE(point->read_bytes, total + point->logical_bytes / 16)
        << "the estimate must not be far below what was read";
  }
  // The thaw guards of these captures only stood by: their logs are not kept.
  std::error_code ignored;
  for (const auto& entry :
       std::filesystem::directory_iterator(world_.paths().run_root + "/capture", ignored)) {
    EXPECT_FALSE(Contains(entry.path().filename().string(), "guard-")) << entry.path();
  }
}

}  // namespace
}  // namespace sp
