#include "capture/capture.h"

#include <chrono>

#include "capture/internal/freeze.h"
#include "capture/internal/incremental.h"
#include "capture/internal/leftovers.h"
#include "capture/internal/point_book.h"
#include "capture/internal/preflight.h"
#include "capture/internal/seams.h"
#include "capture/internal/stream.h"
#include "capture/internal/volume_work.h"
#include "capture/live_cut.h"
#include "capture/point_record.h"
#include "platform/unix_socket.h"
#include "vm/guest_filesystems.h"

namespace sp::capture {

using nlohmann::json;

namespace internal {
namespace {

using catalog::PowerState;
using catalog::VmRecord;

// One capture: its parts in order (preflight, incremental planning, the point's start, the cut
// under a freeze or a pause, the stream, the verdict, the commit — or the failure). The members
// hold what the parts found, for the next part and for the point's manifest (Description); the
// comment beside each names the part that fills it in.
class Capture {
 public:
  Capture(const CaptureContext& context, const CaptureRequest& request, const ProgressFn& progress,
          const Seams& seams)
      : context_(context), request_(request), progress_(progress), seams_(seams) {}

  StatusOr<CaptureResult> Run();

 private:
  Status Resolve();
  StatusOr<CaptureResult> RunLive();
  StatusOr<CaptureResult> RunStopped();
  // Running VM: what interrupted captures left, the disks, the agent and the plan; returns the
  // agent when the plan freezes.
  StatusOr<std::unique_ptr<qga::Agent>> PreflightLive(qmp::Session* qmp);
  // Which volumes are incremental; returns the parent's id when one is.
  StatusOr<std::string> PlanIncremental(qmp::Session* qmp);
  Status Begin(const std::string& parent_id);
  Status CutLive(std::unique_ptr<qga::Agent> agent, LiveCut* cut);
  StatusOr<FreezeSettings> FreezeSettingsFor() const;
  Status Stream(const SourceOpener& open);
  StatusOr<CaptureResult> Commit();
  Status Fail(const Status& status);
  Status ExplainStop(const Status& status);
  repo::PointDescription Description() const;
  // Names this capture's scratch files: the VM (so that leftovers of an interrupted capture of
  // the same VM can be found) and the point.
  std::string WorkName() const {
    std::string id = point_ && point_->begun() ? point_->id() : "new";
    return absl::StrCat(vm_.uuid.substr(0, 8), "-", id.substr(id.size() > 8 ? id.size() - 8 : 0));
  }
  vm::CaptureFiles Files() const { return vm::CaptureFilesFor(vm_, context_.runtime->run_root()); }

  const CaptureContext& context_;
  const CaptureRequest& request_;
  const ProgressFn& progress_;
  const Seams& seams_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();

  VmRecord vm_;  // preflight
  Policy policy_ = Policy::kPreferApp;
  Power power_ = Power::kRunning;
  std::vector<VolumeWork> volumes_;  // preflight, then incremental planning, Begin, the stream
  std::unique_ptr<FileLock> lock_;   // the VM's capture lock, held to the end
  AgentFinding agent_finding_;       // the agent probe
  std::vector<qga::Filesystem> guest_filesystems_;
  Plan plan_;                          // the verdict before and after the freeze
  std::vector<repo::PointExt4> ext4_;  // the stream's truth check
  std::vector<std::string> dirty_journals_;
  CaptureResult result_;              // every part adds to it
  std::unique_ptr<PointBook> point_;  // from Resolve on, for the failure's event
};

Status Capture::Resolve() {
  SP_ASSIGN_OR_RETURN(Preflight preflight, ResolveVm(context_, request_));
  vm_ = std::move(preflight.vm);
  policy_ = preflight.policy;
  power_ = preflight.power;
  volumes_ = std::move(preflight.volumes);
  lock_ = std::move(preflight.lock);
  point_ = std::make_unique<PointBook>(context_.catalog, context_.repo, vm_);
  result_.vm_name = vm_.name;
  result_.power_state = catalog::PowerStateName(vm_.state);
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<qga::Agent>> Capture::PreflightLive(qmp::Session* qmp) {
  SP_RETURN_IF_ERROR(CleanUpInterrupted(qmp, vm_, Files(), context_.catalog, &result_.notes));
  SP_ASSIGN_OR_RETURN(vm::RunPaths paths, context_.runtime->PathsFor(vm_));
  SP_RETURN_IF_ERROR(ResolveAbandonedFreeze(paths, vm_, context_.catalog, &result_.notes));
  SP_RETURN_IF_ERROR(InspectLive(qmp, vm_, volumes_));
  AgentProbe probe = ProbeAgent(seams_.connect_agent, vm_, policy_, request_.agent_timeout);
  agent_finding_ = probe.finding;
  guest_filesystems_ = std::move(probe.filesystems);
  SP_ASSIGN_OR_RETURN(plan_, Decide(policy_, power_, agent_finding_, vm_.name));
  if (!plan_.freeze) probe.agent.reset();
  return std::move(probe.agent);
}

StatusOr<std::string> Capture::PlanIncremental(qmp::Session* qmp) {
  SP_ASSIGN_OR_RETURN(std::optional<ParentPoint> parent,
                      FindParent(context_.catalog, context_.repo, vm_.uuid));
  SP_ASSIGN_OR_RETURN(IncrementalPlan plan,
                      MakeIncrementalPlan(volumes_, power_, request_.force_full, parent, qmp));
  ApplyPlan(plan, volumes_);
  return plan.parent_id;
}

Status Capture::Begin(const std::string& parent_id) {
  SP_RETURN_IF_ERROR(point_->Begin(PointRequest(vm_, request_, volumes_, parent_id), volumes_));
  for (VolumeWork& work : volumes_) {
    if (power_ == Power::kRunning && work.record.format == "qcow2") {
      work.new_bitmap = absl::StrCat(kBitmapPrefix, point_->id());
    }
  }
  return absl::OkStatus();
}

StatusOr<FreezeSettings> Capture::FreezeSettingsFor() const {
  FreezeSettings settings;
  settings.policy = policy_;
  settings.vm_name = vm_.name;
  settings.agent_version = agent_finding_.version;
  settings.agent_timeout = request_.agent_timeout;
  ThawGuardOptions& guard = settings.guard;
  guard.program = context_.program;
  SP_ASSIGN_OR_RETURN(vm::RunPaths paths, context_.runtime->PathsFor(vm_));
  guard.qga_socket = vm_.origin == "managed" ? paths.qga_socket : vm_.qga_socket;
  guard.vm_name = vm_.name;
  guard.vm_id = vm_.id;
  guard.catalog_path = context_.catalog_path;
  guard.log_path = absl::StrCat(Files().dir, "/guard-", WorkName(), ".log");
  guard.deadline = request_.freeze_deadline;
  guard.freeze_record = paths.freeze_record;
  return settings;
}

// Prepares the cut (no freeze needed), makes the point in time and exports it over NBD.
Status Capture::CutLive(std::unique_ptr<qga::Agent> agent, LiveCut* cut) {
  auto prepare_at = std::chrono::steady_clock::now();
  std::vector<VolumeCut> cuts;
  for (const VolumeWork& w : volumes_) {
    cuts.push_back(
        {w.record.name, w.record.node_name, w.drive_path, w.size, w.prev_bitmap, w.new_bitmap});
  }
  SP_RETURN_IF_ERROR(CheckUnixSocketPath(cut->nbd_socket()));
  SP_RETURN_IF_ERROR(cut->Prepare(std::move(cuts)));
  result_.timings.prepare_ms = MillisSince(prepare_at);
  SP_ASSIGN_OR_RETURN(FreezeSettings settings, FreezeSettingsFor());
  SP_ASSIGN_OR_RETURN(CutWindow window,
                      FreezeAndCut(plan_, std::move(agent), settings, seams_.start_watch, cut));
  plan_ = window.plan;
  CaptureTimings& t = result_.timings;
  t.freeze_ms = window.freeze_ms;
  t.qmp_ms = window.qmp_ms;
  t.paused_ms = window.paused_ms;
  t.thaw_ms = window.thaw_ms;
  t.frozen_window_ms = window.frozen_window_ms;
  for (std::string& note : window.notes) result_.notes.push_back(std::move(note));
  return cut->Export();
}

StatusOr<CaptureResult> Capture::RunLive() {
  SP_ASSIGN_OR_RETURN(std::unique_ptr<qmp::Session> qmp, seams_.connect_qmp(vm_));
  SP_ASSIGN_OR_RETURN(std::unique_ptr<qga::Agent> agent, PreflightLive(qmp.get()));
  SP_ASSIGN_OR_RETURN(std::string parent_id, PlanIncremental(qmp.get()));
  SP_RETURN_IF_ERROR(RemoveStaleBitmaps(qmp.get(), volumes_));
  result_.timings.preflight_ms = MillisSince(start_);
  SP_RETURN_IF_ERROR(Begin(parent_id));
  std::string work = absl::StrCat(Files().dir, "/", WorkName());
  LiveCut cut(qmp.get(), work, work + ".nbd");  // torn down as a failure unless committed
  SP_RETURN_IF_ERROR(CutLive(std::move(agent), &cut));
  SP_RETURN_IF_ERROR(Stream([&](const VolumeWork& w, block::ConnectOptions options) {
    options.dirty_bitmap = w.prev_bitmap;
    return seams_.connect_nbd(cut.nbd_socket(), w.record.name, options);
  }));
  SP_ASSIGN_OR_RETURN(CaptureResult result, Commit());
  Status torn_down = cut.Teardown(true);
  if (!torn_down.ok()) result_.notes.push_back(std::string(torn_down.message()));
  return result;
}

StatusOr<CaptureResult> Capture::RunStopped() {
  SP_RETURN_IF_ERROR(InspectStopped(volumes_));
  SP_ASSIGN_OR_RETURN(plan_, Decide(policy_, power_, agent_finding_, vm_.name));
  SP_ASSIGN_OR_RETURN(std::string parent_id, PlanIncremental(/*qmp=*/nullptr));
  result_.timings.preflight_ms = MillisSince(start_);
  SP_RETURN_IF_ERROR(Begin(parent_id));
  SP_RETURN_IF_ERROR(Stream([&](const VolumeWork& w, const block::ConnectOptions& options) {
    return seams_.open_image(w.record.path, w.record.format, options);
  }));
  return Commit();
}

Status Capture::Stream(const SourceOpener& open) {
  auto stream_at = std::chrono::steady_clock::now();
  SP_ASSIGN_OR_RETURN(StreamOutcome outcome,
                      StreamVolumes(volumes_, open, point_.get(),
                                    /*check_journals=*/plan_.target == Consistency::kApplication,
                                    Label(vm_), progress_, request_.cancel));
  result_.read_bytes = outcome.read_bytes;
  ext4_ = std::move(outcome.ext4);
  dirty_journals_ = std::move(outcome.dirty_journals);
  result_.timings.stream_ms = MillisSince(stream_at);
  return absl::OkStatus();
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
  d.ext4 = ext4_;
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
  SP_ASSIGN_OR_RETURN(result_.point_id, point_->Commit(Description(), verdict));
  repo::WriteStats stats = point_->stats();
  result_.new_bytes = stats.stored_bytes;
  result_.reused_bytes = result_.logical_bytes - std::min(result_.logical_bytes, stats.bytes_in);
  return result_;
}

// A running VM that stopped meanwhile explains the failure better than the error it caused.
Status Capture::ExplainStop(const Status& status) {
  auto now = context_.runtime->Refresh(vm_);
  if (power_ == Power::kRunning && now.ok() && now->state != PowerState::kRunning) {
    return absl::AbortedError(absl::StrCat(Label(vm_), " stopped during the capture (",
                                           now->state_reason, "); the point was discarded (",
                                           status.message(), ")"));
  }
  return status;
}

Status Capture::Fail(const Status& status) {
  Status reported = point_->Abort() ? ExplainStop(status) : status;
  point_->RecordFailure(reported);
  return reported;
}

StatusOr<CaptureResult> Capture::Run() {
  SP_RETURN_IF_ERROR(Resolve());
  auto result = power_ == Power::kRunning ? RunLive() : RunStopped();
  if (!result.ok()) return Fail(result.status());
  return result;
}

}  // namespace

StatusOr<CaptureResult> CaptureVmWith(const CaptureContext& context, const CaptureRequest& request,
                                      const ProgressFn& progress, const Seams& seams) {
  Capture capture(context, request, progress, seams);
  return capture.Run();
}

}  // namespace internal

json CaptureResult::ToJson() const {
  return {{"id", point_id},
          {"vm", vm_name},
          {"consistency", ConsistencyName(consistency)},
          {"reason", reason},
          {"power_state", power_state},
          {"incremental", incremental},
          {"notes", notes},
          {"timings_ms",
           {{"preflight", timings.preflight_ms},
            {"prepare", timings.prepare_ms},
            {"freeze", timings.freeze_ms},
            {"qmp", timings.qmp_ms},
            {"paused", timings.paused_ms},
            {"thaw", timings.thaw_ms},
            {"frozen_window", timings.frozen_window_ms},
            {"stream", timings.stream_ms},
            {"total", timings.total_ms}}},
          {"bytes",
           {{"logical", logical_bytes},
            {"read", read_bytes},
            {"new", new_bytes},
            {"reused", reused_bytes}}}};
}

StatusOr<CaptureResult> CaptureVm(const CaptureContext& context, const CaptureRequest& request,
                                  const ProgressFn& progress) {
  internal::Seams seams = internal::RealSeams(context.runtime);
  return internal::CaptureVmWith(context, request, progress, seams);
}

}  // namespace sp::capture
