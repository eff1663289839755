#include "capture/capture.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "block/block_source.h"
#include "block/fs_probe.h"
#include "block/stream.h"
#include "capture/live_cut.h"
#include "capture/point_record.h"
#include "capture/thaw_guard.h"
#include "catalog/recovery_points.h"
#include "platform/fault.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "qga/freeze_record.h"
#include "vm/guest_filesystems.h"
#include "vm/images.h"

namespace sp::capture {
namespace {

using catalog::PowerState;
using catalog::VmRecord;
using catalog::VolumeRecord;
using nlohmann::json;

std::string Label(const VmRecord& vm) { return absl::StrCat("VM '", vm.name, "'"); }

// The QOM path of a disk's block backend, as stillpoint names the disks of the VMs it launches.
std::string DrivePath(const VolumeRecord& volume) {
  return absl::StrCat("/machine/peripheral/", volume.name, "/virtio-backend");
}

StatusOr<std::vector<VolumeRecord>> SelectVolumes(const VmRecord& vm,
                                                  const std::vector<std::string>& wanted) {
  if (wanted.empty()) return vm.volumes;
  std::vector<VolumeRecord> selected;
  for (const std::string& name : wanted) {
    const VolumeRecord* volume = vm.FindVolume(name);
    if (volume == nullptr) {
      std::vector<std::string> names;
      for (const auto& v : vm.volumes) names.push_back(v.name);
      return absl::NotFoundError(absl::StrCat(Label(vm), " has no volume '", name,
                                              "' (it has: ", absl::StrJoin(names, ", "), ")"));
    }
    if (std::none_of(selected.begin(), selected.end(),
                     [&](const VolumeRecord& v) { return v.name == name; })) {
      selected.push_back(*volume);
    }
  }
  const VolumeRecord* boot = vm.BootVolume();
  if (boot != nullptr && std::none_of(selected.begin(), selected.end(),
                                      [&](const VolumeRecord& v) { return v.boot; })) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the boot volume '", boot->name, "' of ", Label(vm),
        " is always captured; add --volume ", boot->name));
  }
  return selected;
}

Power PowerOf(const VmRecord& vm) {
  switch (vm.state) {
    case PowerState::kRunning:
      return Power::kRunning;
    case PowerState::kStoppedClean:
      return Power::kStoppedClean;
    case PowerState::kStoppedDirty:
      return vm.origin == "managed" ? Power::kStoppedDirty : Power::kStoppedUnknown;
    case PowerState::kStopped:
      return Power::kStoppedUnknown;
    case PowerState::kDefined:
      return Power::kStoppedUnknown;
  }
  return Power::kStoppedUnknown;
}

struct VolumeWork {
  VolumeRecord record;
  uint64_t size = 0;
  uint64_t estimate = 0;  // upper bound of what it may add to the repository
  uint64_t to_read = 0;   // what the stream is expected to read: allocated, or dirty bytes
  bool incremental = false;
  std::string prev_bitmap;
  std::string new_bitmap;
  std::string drive_path;
  std::string note;  // why a full read, when an incremental was possible in principle
};

class Capture {
 public:
  Capture(const CaptureContext& context, const CaptureRequest& request,
          const ProgressFn& progress)
      : context_(context), request_(request), progress_(progress) {}

  StatusOr<CaptureResult> Run();

 private:
  Status Resolve();
  Status InspectLive();
  Status InspectStopped();
  Status ProbeAgent();
  Status PlanIncremental();
  Status Begin();
  Status MarkAbandoned();
  StatusOr<CaptureResult> RunLive();
  StatusOr<CaptureResult> RunStopped();
  Status FreezeAndCut(LiveCut* cut);
  Status StreamVolume(block::BlockSource* source, VolumeWork& work);
  using SourceOpener = std::function<StatusOr<std::unique_ptr<block::BlockSource>>(
      const VolumeWork&, block::ConnectOptions)>;
  Status StreamAll(const SourceOpener& open);
  void CheckJournals(block::BlockSource* source, const VolumeWork& work);
  StatusOr<CaptureResult> Commit();
  Status Fail(const Status& status);
  repo::PointDescription Description() const;
  // Names this capture's scratch files: the VM (so that leftovers of an interrupted capture of
  // the same VM can be found) and the point.
  std::string WorkName() const {
    std::string id = writer_ ? writer_->id() : "new";
    return absl::StrCat(vm_.uuid.substr(0, 8), "-", id.substr(id.size() > 8 ? id.size() - 8 : 0));
  }
  Status CleanUpInterrupted();
  Status RemoveStaleBitmaps();
  Status LockVm();
  vm::CaptureFiles Files() const {
    return vm::CaptureFilesFor(vm_, context_.runtime->run_root());
  }
  Status ResolveAbandonedFreeze();

  const CaptureContext& context_;
  const CaptureRequest& request_;
  const ProgressFn& progress_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();

  VmRecord vm_;
  Policy policy_ = Policy::kPreferApp;
  Power power_ = Power::kRunning;
  std::vector<VolumeWork> volumes_;
  std::unique_ptr<FileLock> lock_;
  std::unique_ptr<qmp::Client> qmp_;
  std::unique_ptr<qga::Client> agent_;
  AgentFinding agent_finding_;
  std::vector<qga::Filesystem> guest_filesystems_;
  Plan plan_;
  std::optional<repo::Manifest> parent_;
  std::unique_ptr<repo::RecoveryPointWriter> writer_;
  std::unique_ptr<catalog::RecoveryPointIndex> index_;
  CaptureResult result_;
  json ext4_ = json::array();
  std::vector<std::string> dirty_journals_;
  uint64_t all_done_ = 0;
  bool data_moved_ = false;  // streaming started: a failure from here on leaves a failed point
};

Status Capture::Resolve() {
  SP_ASSIGN_OR_RETURN(vm_, context_.catalog->FindVm(request_.vm));
  SP_RETURN_IF_ERROR(MakeDirs(Files().dir, 0700));
  SP_RETURN_IF_ERROR(LockVm());
  SP_ASSIGN_OR_RETURN(vm_, context_.runtime->Refresh(vm_));
  SP_ASSIGN_OR_RETURN(std::vector<VolumeRecord> selected, SelectVolumes(vm_, request_.volumes));
  if (request_.policy) {
    policy_ = *request_.policy;
  } else {
    SP_ASSIGN_OR_RETURN(policy_, ParsePolicy(vm_.policy));
  }
  power_ = PowerOf(vm_);
  for (VolumeRecord& record : selected) {
    VolumeWork work;
    work.record = std::move(record);
    volumes_.push_back(std::move(work));
  }
  result_.vm_name = vm_.name;
  result_.power_state = catalog::PowerStateName(vm_.state);
  return absl::OkStatus();
}

Status Capture::ProbeAgent() {
  if (!vm_.agent) {
    agent_finding_.problem = "the VM has no guest agent channel";
    return absl::OkStatus();
  }
  if (policy_ == Policy::kCrashOnly) return absl::OkStatus();
  Millis timeout = request_.agent_timeout;
  auto agent = context_.runtime->ConnectAgent(vm_, timeout);
  Status answered = agent.ok() ? (*agent)->Sync(timeout) : agent.status();
  if (answered.ok()) answered = (*agent)->Ping(timeout);
  if (!answered.ok()) {
    agent_finding_.problem = answered.code() == absl::StatusCode::kDeadlineExceeded
                                 ? absl::StrCat("guest agent did not answer within ",
                                                timeout.count(), " ms")
                                 : absl::StrCat("guest agent unreachable: ", answered.message());
    return absl::OkStatus();
  }
  agent_ = std::move(agent).value();
  agent_finding_.answers = true;
  auto info = agent_->Info(timeout);
  if (!info.ok()) {
    agent_finding_.problem = absl::StrCat("guest-info failed: ", info.status().message());
    return absl::OkStatus();
  }
  agent_finding_.version = info->version;
  // First: while frozen, the agent reports its freeze command as disabled.
  auto state = agent_->FreezeStatus(timeout);
  if (state.ok() && *state == qga::FreezeState::kFrozen) {
    agent_finding_.problem =
        "the guest's filesystems were already frozen by someone else (left frozen; "
        "`stillpoint vm agent thaw` thaws them)";
    return absl::OkStatus();
  }
  if (!info->Supports("guest-fsfreeze-freeze")) {
    agent_finding_.problem = absl::StrCat("guest agent ", info->version,
                                          " has guest-fsfreeze-freeze disabled");
    return absl::OkStatus();
  }
  auto filesystems = agent_->GetFsinfo(timeout);
  if (filesystems.ok()) guest_filesystems_ = *filesystems;
  agent_finding_.can_freeze = true;
  return absl::OkStatus();
}

Status Capture::PlanIncremental() {
  SP_ASSIGN_OR_RETURN(index_, catalog::RecoveryPointIndex::Open(context_.catalog->db()));
  SP_ASSIGN_OR_RETURN(auto points, index_->List(vm_.uuid));
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    if (it->state != "complete") continue;
    auto manifest = context_.repo->GetRecoveryPoint(it->id);
    if (manifest.ok()) parent_ = std::move(manifest).value();
    break;
  }
  for (VolumeWork& work : volumes_) {
    bool qcow2 = work.record.format == "qcow2";
    if (!qcow2) work.note = absl::StrCat(work.record.name, ": raw image, no dirty bitmap: full");
    if (power_ != Power::kRunning || !qcow2) continue;
    std::string bitmap;
    if (parent_ && parent_->FindVolume(work.record.name) != nullptr) {
      const repo::PointVolume* recorded = parent_->point_description.FindVolume(work.record.name);
      if (recorded != nullptr) bitmap = recorded->bitmap;
    }
    if (request_.force_full) {
      work.note = absl::StrCat(work.record.name, ": full requested");
    } else if (!parent_) {
      work.note = absl::StrCat(work.record.name, ": first snapshot: full");
    } else if (bitmap.empty()) {
      work.note = absl::StrCat(work.record.name, ": previous point has no dirty bitmap: full");
    } else {
      SP_ASSIGN_OR_RETURN(std::string problem,
                          CheckBitmap(qmp_.get(), work.record.node_name, bitmap));
      if (problem.empty()) {
        work.incremental = true;
        work.prev_bitmap = bitmap;
      } else {
        work.note = absl::StrCat(work.record.name, ": ", problem, ": full");
      }
    }
  }
  return absl::OkStatus();
}

// We hold the VM's writer lock now, so any other in-progress point of this VM belongs to a
// capture process that ended without finishing (killed, or its host restarted).
Status Capture::MarkAbandoned() {
  SP_ASSIGN_OR_RETURN(auto points, index_->List(vm_.uuid));
  for (catalog::RecoveryPointRecord& point : points) {
    if (point.state != "in-progress" || point.id == writer_->id()) continue;
    point.state = "failed";
    point.reason = "the capture process ended before finishing (killed?)";
    SP_RETURN_IF_ERROR(index_->Upsert(point));
  }
  return absl::OkStatus();
}

Status Capture::Begin() {
  repo::RecoveryPointRequest request;
  request.vm = {vm_.uuid, vm_.name};
  request.name = request_.name.empty() ? vm_.name : request_.name;
  request.description = request_.description;
  bool any_incremental = std::any_of(volumes_.begin(), volumes_.end(),
                                     [](const VolumeWork& w) { return w.incremental; });
  if (any_incremental) request.parent_id = parent_->id;
  for (const VolumeWork& work : volumes_) request.estimated_bytes += work.estimate;
  request.space_limit_bytes = vm_.space_limit_bytes
                                  ? std::optional<uint64_t>(static_cast<uint64_t>(*vm_.space_limit_bytes))
                                  : std::nullopt;
  SP_ASSIGN_OR_RETURN(writer_, context_.repo->BeginRecoveryPoint(request));
  SP_RETURN_IF_ERROR(MarkAbandoned());
  catalog::RecoveryPointRecord record;
  record.id = writer_->id();
  record.vm_uuid = vm_.uuid;
  record.vm_name = vm_.name;
  record.name = request.name;
  record.description = request.description;
  record.parent_id = request.parent_id;
  record.state = "in-progress";
  record.created_us = context_.catalog->clock()->UnixMicros();
  for (const VolumeWork& work : volumes_) {
    record.volumes.push_back(work.record.name);
    record.logical_bytes += static_cast<int64_t>(work.size);
  }
  SP_RETURN_IF_ERROR(index_->Upsert(record));
  for (VolumeWork& work : volumes_) {
    if (power_ == Power::kRunning && work.record.format == "qcow2") {
      work.new_bitmap = absl::StrCat(kBitmapPrefix, writer_->id());
    }
  }
  return absl::OkStatus();
}

// Sizes, allocation and the QOM path of each disk of a running VM, from query-block.
Status Capture::InspectLive() {
  SP_ASSIGN_OR_RETURN(json blocks, qmp_->Execute("query-block"));
  for (VolumeWork& work : volumes_) {
    for (const json& block : blocks) {
      const json& inserted = block.value("inserted", json::object());
      // By its node, or (when an interrupted capture left the drive on its filter) by the path
      // stillpoint gives the disks of the VMs it launches.
      if (inserted.value("node-name", "") != work.record.node_name &&
          block.value("qdev", "") != DrivePath(work.record)) {
        continue;
      }
      const json& image = inserted.value("image", json::object());
      work.size = image.value("virtual-size", uint64_t{0});
      work.estimate = image.value("actual-size", work.size);
      work.drive_path = block.value("qdev", "");
    }
    if (work.size == 0 || work.drive_path.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          Label(vm_), ": QEMU has no disk with format node '", work.record.node_name,
          "' for volume '", work.record.name, "' (was the VM reconfigured? re-attach it)"));
    }
  }
  return absl::OkStatus();
}

Status Capture::InspectStopped() {
  for (VolumeWork& work : volumes_) {
    SP_ASSIGN_OR_RETURN(vm::ImageInfo info, vm::InspectImage(work.record.path));
    work.size = info.virtual_size;
    SP_ASSIGN_OR_RETURN(uint64_t file_size, FileSize(work.record.path));
    work.estimate = std::min(file_size, info.virtual_size);
  }
  return absl::OkStatus();
}

// A capture of this VM killed before its teardown leaves nodes in QEMU, perhaps a paused VM,
// and scratch files behind; we hold the VM's capture lock, so none of that is in use any more.
Status Capture::CleanUpInterrupted() {
  std::vector<DeviceDrive> devices;
  if (vm_.origin == "managed") {
    for (const VolumeRecord& record : vm_.volumes) {
      devices.push_back({DrivePath(record), record.node_name});
    }
  }
  bool stop_server = false, resumed = false;
  std::vector<std::filesystem::path> stale;
  std::string prefix = Files().prefix;
  std::error_code ignored;
  for (const auto& entry : std::filesystem::directory_iterator(Files().dir, ignored)) {
    std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    stale.push_back(entry.path());
    if (absl::EndsWith(name, ".nbd")) stop_server = true;
    if (!entry.is_directory(ignored)) continue;
    for (DeviceDrive& device : ReadDevicesNote(entry.path())) devices.push_back(device);
    SP_ASSIGN_OR_RETURN(bool paused, vm::ResumeIfPausedByCapture(qmp_.get(), entry.path()));
    resumed = resumed || paused;
  }
  SP_ASSIGN_OR_RETURN(bool found, RemoveCaptureNodes(qmp_.get(), devices, stop_server, "cleanup"));
  for (const auto& path : stale) std::filesystem::remove_all(path, ignored);
  if (!found && stale.empty()) return absl::OkStatus();
  std::string what = absl::StrCat("removed what an interrupted capture left in QEMU and on disk",
                                  resumed ? "; resumed the VM it had paused" : "");
  result_.notes.push_back(what);
  (void)context_.catalog->AddEvent(&vm_, "snapshot.cleanup", what);
  return absl::OkStatus();
}

// Bitmaps of ours that no longer serve as the base of an incremental only cost the guest's writes.
Status Capture::RemoveStaleBitmaps() {
  for (const VolumeWork& work : volumes_) {
    if (work.record.format != "qcow2") continue;
    SP_ASSIGN_OR_RETURN(std::vector<std::string> own,
                        OwnBitmaps(qmp_.get(), work.record.node_name));
    for (const std::string& stale : own) {
      if (stale == work.prev_bitmap) continue;
      SP_RETURN_IF_ERROR(qmp_->Execute("block-dirty-bitmap-remove",
                                       {{"node", work.record.node_name}, {"name", stale}})
                             .status());
    }
  }
  return absl::OkStatus();
}

// A capture and its guard that both died while the guest was frozen leave the freeze record;
// the VM's monitor thaws such a guest, and so does the next capture, before it asks the agent
// anything (it would find the guest frozen and blame someone else).
Status Capture::ResolveAbandonedFreeze() {
  SP_ASSIGN_OR_RETURN(vm::RunPaths paths, context_.runtime->PathsFor(vm_));
  SP_RETURN_IF_ERROR(MakeDirs(paths.dir, 0700));
  Deadline deadline = Deadline::In(Millis(30'000));
  while (PathExists(paths.freeze_record)) {
    SP_ASSIGN_OR_RETURN(std::string thawed, qga::ThawIfAbandoned(paths.freeze_record, Label(vm_)));
    if (!thawed.empty()) {
      result_.notes.push_back(thawed);
      (void)context_.catalog->AddEvent(&vm_, "agent.thawed-abandoned", thawed);
      continue;
    }
    if (deadline.Expired()) {
      return absl::UnavailableError(absl::StrCat(
          Label(vm_), ": an earlier capture's freeze is still being resolved (",
          paths.freeze_record, "); try again in a minute"));
    }
    std::this_thread::sleep_for(Millis(100));
  }
  return absl::OkStatus();
}

// One capture of a VM at a time, decided before QMP or the agent is touched: both serve one
// client, and a second capture would only wait on them and fail with a misleading error.
Status Capture::LockVm() {
  auto lock = FileSystem::Posix()->TryLock(Files().lock);
  if (absl::IsFailedPrecondition(lock.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "another capture of ", Label(vm_),
        " is running; wait for it to finish (`stillpoint snapshot list ", vm_.name,
        "` shows it in progress)"));
  }
  SP_RETURN_IF_ERROR(lock.status());
  lock_ = std::move(lock).value();
  return absl::OkStatus();
}

Status Capture::FreezeAndCut(LiveCut* cut) {
  if (!plan_.freeze) {
    SP_ASSIGN_OR_RETURN(CutTimings timings, cut->Cut(/*pause_vcpus=*/true));
    result_.timings.qmp_ms = timings.qmp_ms;
    result_.timings.paused_ms = timings.paused_ms;
    return absl::OkStatus();
  }
  ThawGuardOptions guard_options;
  guard_options.program = context_.program;
  SP_ASSIGN_OR_RETURN(vm::RunPaths paths, context_.runtime->PathsFor(vm_));
  guard_options.qga_socket = vm_.origin == "managed" ? paths.qga_socket : vm_.qga_socket;
  guard_options.vm_name = vm_.name;
  guard_options.vm_id = vm_.id;
  guard_options.catalog_path = context_.catalog_path;
  guard_options.log_path = absl::StrCat(Files().dir, "/guard-", WorkName(), ".log");
  guard_options.deadline = request_.freeze_deadline;
  guard_options.freeze_record = paths.freeze_record;
  SP_ASSIGN_OR_RETURN(auto guard, ThawGuard::Start(guard_options));
  qga::FreezeRecord record{::getpid(), guard->pid(),
                           Clock::Real()->UnixMicros() / 1000 + request_.freeze_deadline.count(),
                           guard_options.qga_socket};
  SP_RETURN_IF_ERROR(qga::WriteFreezeRecord(paths.freeze_record, record));
  auto frozen_at = std::chrono::steady_clock::now();
  auto frozen = agent_->Freeze(request_.freeze_deadline);
  result_.timings.freeze_ms = MillisSince(frozen_at);
  if (!frozen.ok()) {
    auto thawed = agent_->Thaw(request_.agent_timeout);  // a failed freeze may have frozen some
    agent_.reset();  // leave the agent to the guard should it still need to thaw
    if (thawed.ok() && guard->Release().ok()) ::unlink(paths.freeze_record.c_str());
    SP_ASSIGN_OR_RETURN(plan_, AfterFreeze(policy_, plan_, frozen, agent_finding_.version,
                                           vm_.name));
    return FreezeAndCut(cut);
  }
  FaultPoint("cut.frozen");
  auto timings = cut->Cut(/*pause_vcpus=*/false);
  auto thaw_at = std::chrono::steady_clock::now();
  auto thawed = agent_->Thaw(request_.freeze_deadline);
  result_.timings.thaw_ms = MillisSince(thaw_at);
  result_.timings.frozen_window_ms = MillisSince(frozen_at);
  if (!thawed.ok()) {
    agent_.reset();
    return absl::InternalError(absl::StrCat(Label(vm_), ": thaw failed (",
                                            thawed.status().message(),
                                            "); the thaw guard takes over"));
  }
  FaultPoint("cut.thawed");
  ::unlink(paths.freeze_record.c_str());
  if (guard->Release().ok()) {
    ::unlink(guard_options.log_path.c_str());  // it only stood by: nothing worth keeping
  } else {
    // We thawed the guest ourselves; the guard only stood by (it acts on its deadline by killing
    // this process first, so it cannot have acted here: it died).
    result_.notes.push_back("the thaw guard ended before the thaw; the guest was thawed anyway");
  }
  SP_RETURN_IF_ERROR(timings.status());
  result_.timings.qmp_ms = timings->qmp_ms;
  result_.timings.paused_ms = timings->paused_ms;
  SP_ASSIGN_OR_RETURN(plan_, AfterFreeze(policy_, plan_, frozen, agent_finding_.version, vm_.name));
  return absl::OkStatus();
}

Status Capture::StreamVolume(block::BlockSource* source, VolumeWork& work) {
  data_moved_ = true;
  SP_ASSIGN_OR_RETURN(repo::VolumeWriter * volume,
                      writer_->AddVolume(work.record.name, source->size()));
  const uint32_t chunk_size = context_.repo->config().chunk_size;
  block::StreamOptions options;
  options.incremental = work.incremental;
  uint64_t base = all_done_;
  auto sink = [&](uint64_t index, block::ChunkKind kind, std::string data) -> Status {
    FaultPoint("stream.chunk");
    switch (kind) {
      case block::ChunkKind::kZero:
        return volume->PutZero(index);
      case block::ChunkKind::kReuseParent:
        return volume->ReuseParent(index);
      case block::ChunkKind::kData:
        return volume->PutChunk(index, std::move(data));
    }
    return absl::InternalError("unknown chunk kind");
  };
  uint64_t total = 0;
  for (const VolumeWork& w : volumes_) total += w.to_read;
  // Progress counts what is read (holes and reused chunks cost nothing), so the ETA holds.
  auto report = [&](const block::StreamStats& done) {
    uint64_t volume_done = std::min(done.bytes_read, work.to_read);
    all_done_ = base + volume_done;
    if (progress_) progress_({work.record.name, volume_done, total, all_done_});
  };
  SP_ASSIGN_OR_RETURN(block::StreamStats stats,
                      block::StreamVolume(*source, chunk_size, options, sink, report));
  result_.read_bytes += stats.bytes_read;
  all_done_ = base + work.to_read;
  if (progress_) progress_({work.record.name, work.to_read, total, all_done_});
  return absl::OkStatus();
}

// Opens every selected volume first, so that the progress total (what will be read, from block
// status) is known before the first byte moves; then streams them one after the other.
Status Capture::StreamAll(const SourceOpener& open) {
  std::vector<std::unique_ptr<block::BlockSource>> sources;
  block::StreamOptions stream_options;
  for (VolumeWork& w : volumes_) {
    block::ConnectOptions options;
    options.label = absl::StrCat("volume '", w.record.name, "' of ", Label(vm_));
    SP_ASSIGN_OR_RETURN(auto source, open(w, options));
    stream_options.incremental = w.incremental;
    SP_ASSIGN_OR_RETURN(w.to_read, block::BytesToRead(*source, context_.repo->config().chunk_size,
                                                      stream_options));
    sources.push_back(std::move(source));
  }
  for (size_t i = 0; i < volumes_.size(); ++i) {
    SP_RETURN_IF_ERROR(StreamVolume(sources[i].get(), volumes_[i]));
    if (plan_.target == Consistency::kApplication) CheckJournals(sources[i].get(), volumes_[i]);
    sources[i].reset();  // a stopped VM's qemu-nbd ends with it
  }
  return absl::OkStatus();
}

// An application-consistent point must show it: every ext4 journal in it must be clean.
void Capture::CheckJournals(block::BlockSource* source, const VolumeWork& work) {
  auto found = block::ProbeExt4(*source);
  if (!found.ok()) return;
  for (const block::Ext4Info& fs : *found) {
    ext4_.push_back({{"volume", work.record.name}, {"where", fs.where}, {"offset", fs.offset},
                     {"kind", fs.kind}, {"label", fs.label}, {"uuid", fs.uuid},
                     {"needs_recovery", fs.needs_recovery}});
    if (fs.needs_recovery) {
      dirty_journals_.push_back(absl::StrCat("volume '", work.record.name, "' (", fs.where, ")"));
    }
  }
}

repo::PointDescription Capture::Description() const {
  repo::PointDescription d;
  d.consistency = result_.consistency == Consistency::kApplication
                      ? repo::PointConsistency::kApplication
                      : repo::PointConsistency::kCrash;
  d.reason = result_.reason;
  d.power_state = result_.power_state;
  d.policy = PolicyName(policy_);
  d.agent_version = agent_finding_.version;
  d.incremental = result_.incremental;
  d.notes = result_.notes;
  const CaptureTimings& t = result_.timings;
  d.timings = {t.preflight_ms, t.prepare_ms, t.freeze_ms,        t.qmp_ms,
               t.paused_ms,    t.thaw_ms,    t.frozen_window_ms, t.stream_ms};
  d.bytes = {result_.logical_bytes, result_.read_bytes};
  for (const VolumeWork& work : volumes_) {
    d.volumes.push_back({work.record.name, work.size, work.record.boot, work.record.format,
                         work.record.serial, work.incremental, work.new_bitmap});
  }
  for (const auto& fs : vm::MapFilesystems(vm_, guest_filesystems_)) {
    d.guest_filesystems.push_back({fs.mountpoint, fs.type, fs.volumes});
  }
  for (const json& fs : ext4_) {  // as CheckJournals made them
    d.ext4.push_back({fs.value("volume", ""), fs.value("where", ""),
                      fs.value("offset", uint64_t{0}), fs.value("kind", ""), fs.value("label", ""),
                      fs.value("uuid", ""), fs.value("needs_recovery", false)});
  }
  d.vm = PointVmFromRecord(vm_);
  return d;
}

StatusOr<CaptureResult> Capture::Commit() {
  SP_ASSIGN_OR_RETURN(Verdict verdict, Judge(policy_, power_, plan_,
                                              TruthCheck{ext4_.size(), dirty_journals_}, vm_.name));
  result_.consistency = verdict.consistency;
  result_.reason = verdict.reason;
  for (const VolumeWork& work : volumes_) {
    result_.logical_bytes += work.size;
    result_.incremental = result_.incremental || work.incremental;
    if (!work.note.empty()) result_.notes.push_back(work.note);
  }
  result_.timings.total_ms = MillisSince(start_);
  FaultPoint("commit.before");
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, writer_->Commit(Description()));
  result_.point_id = manifest.id;
  FaultPoint("commit.after");
  repo::WriteStats stats = writer_->stats();
  result_.new_bytes = stats.stored_bytes;
  result_.reused_bytes = result_.logical_bytes - std::min(result_.logical_bytes, stats.bytes_in);
  (void)index_->Upsert(RecordFromManifest(manifest));
  (void)context_.catalog->AddEvent(
      &vm_, "snapshot.created",
      absl::StrCat("recovery point ", result_.point_id, ": ",
                   ConsistencyName(result_.consistency), "-consistent (", result_.reason, ")"));
  return result_;
}

Status Capture::Fail(const Status& status) {
  Status reported = status;
  if (writer_) {
    std::string id = writer_->id();
    writer_->Abort();
    auto now = context_.runtime->Refresh(vm_);
    if (power_ == Power::kRunning && now.ok() && now->state != PowerState::kRunning) {
      reported = absl::AbortedError(absl::StrCat(
          Label(vm_), " stopped during the capture (", now->state_reason,
          "); the point was discarded (", status.message(), ")"));
    }
    if (index_ && !data_moved_) {
      // Refused before any data moved (e.g. require-app and the freeze failed): an event, not
      // a recovery point.
      (void)index_->Remove(id);
    } else if (index_) {
      auto record = index_->Get(id);
      if (record.ok()) {
        record->state = "failed";
        record->reason = std::string(reported.message());
        (void)index_->Upsert(*record);
      }
    }
  }
  (void)context_.catalog->AddEvent(&vm_, "snapshot.failed", std::string(reported.message()));
  return reported;
}

StatusOr<CaptureResult> Capture::RunLive() {
  SP_ASSIGN_OR_RETURN(qmp_, context_.runtime->ConnectQmp(vm_));
  SP_RETURN_IF_ERROR(CleanUpInterrupted());
  SP_RETURN_IF_ERROR(ResolveAbandonedFreeze());
  SP_RETURN_IF_ERROR(InspectLive());
  SP_RETURN_IF_ERROR(ProbeAgent());
  SP_ASSIGN_OR_RETURN(plan_, Decide(policy_, power_, agent_finding_, vm_.name));
  if (!plan_.freeze) agent_.reset();
  SP_RETURN_IF_ERROR(PlanIncremental());
  SP_RETURN_IF_ERROR(RemoveStaleBitmaps());
  result_.timings.preflight_ms = MillisSince(start_);
  SP_RETURN_IF_ERROR(Begin());
  auto prepare_at = std::chrono::steady_clock::now();
  std::string work = absl::StrCat(Files().dir, "/", WorkName());
  LiveCut cut(qmp_.get(), work, work + ".nbd");
  std::vector<VolumeCut> cuts;
  for (const VolumeWork& w : volumes_) {
    cuts.push_back({w.record.name, w.record.node_name, w.drive_path, w.size, w.prev_bitmap,
                    w.new_bitmap});
  }
  SP_RETURN_IF_ERROR(CheckUnixSocketPath(cut.nbd_socket()));
  SP_RETURN_IF_ERROR(cut.Prepare(std::move(cuts)));
  result_.timings.prepare_ms = MillisSince(prepare_at);
  SP_RETURN_IF_ERROR(FreezeAndCut(&cut));
  agent_.reset();
  SP_RETURN_IF_ERROR(cut.Export());
  auto stream_at = std::chrono::steady_clock::now();
  SP_RETURN_IF_ERROR(StreamAll([&](const VolumeWork& w, block::ConnectOptions options) {
    options.dirty_bitmap = w.prev_bitmap;
    return block::ConnectNbdUnix(cut.nbd_socket(), w.record.name, options);
  }));
  result_.timings.stream_ms = MillisSince(stream_at);
  SP_ASSIGN_OR_RETURN(CaptureResult result, Commit());
  Status torn_down = cut.Teardown(true);
  if (!torn_down.ok()) result_.notes.push_back(std::string(torn_down.message()));
  return result;
}

StatusOr<CaptureResult> Capture::RunStopped() {
  SP_RETURN_IF_ERROR(InspectStopped());
  SP_ASSIGN_OR_RETURN(plan_, Decide(policy_, power_, agent_finding_, vm_.name));
  SP_RETURN_IF_ERROR(PlanIncremental());
  result_.timings.preflight_ms = MillisSince(start_);
  SP_RETURN_IF_ERROR(Begin());
  auto stream_at = std::chrono::steady_clock::now();
  SP_RETURN_IF_ERROR(StreamAll([&](const VolumeWork& w, const block::ConnectOptions& options) {
    return block::OpenImage(w.record.path, w.record.format, options);
  }));
  result_.timings.stream_ms = MillisSince(stream_at);
  return Commit();
}

StatusOr<CaptureResult> Capture::Run() {
  SP_RETURN_IF_ERROR(Resolve());
  auto result = power_ == Power::kRunning ? RunLive() : RunStopped();
  if (!result.ok()) return Fail(result.status());
  return result;
}

}  // namespace

json CaptureResult::ToJson() const {
  return {{"id", point_id}, {"vm", vm_name},
          {"consistency", ConsistencyName(consistency)}, {"reason", reason},
          {"power_state", power_state}, {"incremental", incremental}, {"notes", notes},
          {"timings_ms", {{"preflight", timings.preflight_ms}, {"prepare", timings.prepare_ms},
                          {"freeze", timings.freeze_ms}, {"qmp", timings.qmp_ms},
                          {"paused", timings.paused_ms}, {"thaw", timings.thaw_ms},
                          {"frozen_window", timings.frozen_window_ms},
                          {"stream", timings.stream_ms}, {"total", timings.total_ms}}},
          {"bytes", {{"logical", logical_bytes}, {"read", read_bytes}, {"new", new_bytes},
                     {"reused", reused_bytes}}}};
}

StatusOr<CaptureResult> CaptureVm(const CaptureContext& context, const CaptureRequest& request,
                                  const ProgressFn& progress) {
  Capture capture(context, request, progress);
  return capture.Run();
}

}  // namespace sp::capture
