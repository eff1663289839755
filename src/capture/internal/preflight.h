// Preflight: what a capture learns and decides before it changes anything — the VM under its
// capture lock, the selected volumes, the policy and the power state; then, for a running VM, the
// disks as QEMU has them and what the guest agent can do, or for a stopped VM, its images.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "capture/capture.h"
#include "capture/internal/volume_work.h"
#include "capture/policy.h"
#include "platform/file_system.h"
#include "qga/qga_client.h"
#include "qmp/qmp_client.h"

namespace sp::capture::internal {

struct Preflight {
  catalog::VmRecord vm;  // as refreshed once the lock was held
  Policy policy = Policy::kPreferApp;
  Power power = Power::kRunning;
  std::vector<VolumeWork> volumes;  // the selected ones; only `record` is filled in
  std::unique_ptr<FileLock> lock;   // while held, no other capture of the VM runs
};

// Finds the VM, takes its capture lock (before QMP or the agent is touched), refreshes its power
// state, selects the volumes and the policy. Errors: NotFound (VM, volume), InvalidArgument (boot
// volume deselected), FailedPrecondition (another capture of the VM runs; a bad policy).
StatusOr<Preflight> ResolveVm(const CaptureContext& context, const CaptureRequest& request);

// Size, allocation and QOM path of each volume's disk in a running QEMU (query-block).
// FailedPrecondition when QEMU has no disk for a volume.
Status InspectLive(qmp::Session* qmp, const catalog::VmRecord& vm,
                   std::vector<VolumeWork>& volumes);

// Size and allocation of each volume's image of a stopped VM. FailedPrecondition when a running
// QEMU holds an image.
Status InspectStopped(std::vector<VolumeWork>& volumes);

struct AgentProbe {
  AgentFinding finding;
  std::unique_ptr<qga::Agent> agent;  // answered sync and ping; null otherwise
  std::vector<qga::Filesystem> filesystems;
};

using AgentConnector =
    std::function<StatusOr<std::unique_ptr<qga::Agent>>(const catalog::VmRecord&, Millis)>;

// What the guest agent of a running VM can do, each call bounded by `timeout`. Nothing is asked
// under crash-only. Never fails: an agent that is absent, silent or unable to freeze is a finding.
AgentProbe ProbeAgent(const AgentConnector& connect, const catalog::VmRecord& vm, Policy policy,
                      Millis timeout);

}  // namespace sp::capture::internal
