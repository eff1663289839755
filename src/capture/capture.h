// The snapshot of one VM: policy, preflight, freeze, point-in-time cut, stream into the
// repository, truth check, teardown — for running VMs (through QMP, QEMU's NBD server and the
// guest agent) and stopped ones (their images through qemu-nbd).
//
// A capture either commits a complete recovery point whose manifest records its consistency and
// the reason in words, power state, timings and byte counts, or leaves nothing referenced behind
// (the repository's writer is aborted), records the point as failed in the catalog with the
// reason, and leaves the VM's disks and bitmaps usable. The guest is thawed on every path; a
// thaw guard process covers the capture process dying or hanging while the guest is frozen.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "capture/policy.h"
#include "catalog/catalog.h"
#include "platform/status.h"
#include "repo/repository.h"
#include "vm/runtime.h"

namespace sp::capture {

struct CaptureRequest {
  std::string vm;    // name or UUID
  std::string name;  // default: the VM's name
  std::string description;
  std::vector<std::string> volumes;  // empty = all; the boot volume is always required
  std::optional<Policy> policy;      // default: the VM's policy
  bool force_full = false;
  Millis agent_timeout{2000};  // for each guest-agent call of the preflight
  // The thaw guard thaws (and kills a hung capture) after this; 0 = the setting
  // capture.freeze_deadline_ms (default 5000).
  Millis freeze_deadline{0};
  // Set to true (by another thread) to stop the capture: it thaws, tears down and discards the
  // point, and fails with Cancelled. Not owned; may be null.
  const std::atomic<bool>* cancel = nullptr;
};

// Bytes to read, not volume sizes: what is allocated (a full) or dirty (an incremental), an
// estimate made before the stream starts; holes and reused chunks take no time and count nothing.
struct Progress {
  std::string volume;
  uint64_t done_bytes = 0;   // read so far of the volume being captured
  uint64_t total_bytes = 0;  // expected to be read from all selected volumes
  uint64_t all_done_bytes = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

struct CaptureTimings {
  double preflight_ms = 0, prepare_ms = 0, freeze_ms = 0, qmp_ms = 0, paused_ms = 0;
  double thaw_ms = 0, frozen_window_ms = 0, stream_ms = 0, total_ms = 0;
};

struct CaptureResult {
  std::string point_id;
  std::string vm_name;
  Consistency consistency = Consistency::kCrash;
  std::string reason;
  std::string power_state;         // "running", "stopped-clean", ...
  bool incremental = false;        // at least one volume read only its dirty extents
  std::vector<std::string> notes;  // e.g. why a volume was read in full
  CaptureTimings timings;
  uint64_t logical_bytes = 0;  // size of the selected volumes
  uint64_t read_bytes = 0;     // read from the VM's disks
  uint64_t new_bytes = 0;      // stored anew in the repository
  uint64_t reused_bytes = 0;   // deduplicated or taken from the parent
  nlohmann::json ToJson() const;
};

struct CaptureContext {
  catalog::Catalog* catalog = nullptr;  // not owned
  vm::Runtime* runtime = nullptr;       // not owned
  repo::Repository* repo = nullptr;     // not owned
  std::string catalog_path;             // for the thaw guard
  std::string program;                  // binary that runs the thaw guard; empty = this one
};

// Takes a snapshot of `request.vm`. Errors: NotFound (VM, volume), InvalidArgument (boot volume
// deselected), FailedPrecondition (require-app not possible, image in use, another capture of
// the VM running), ResourceExhausted (space limit), Aborted (the VM stopped or QEMU went away
// mid-capture: the point was discarded).
StatusOr<CaptureResult> CaptureVm(const CaptureContext& context, const CaptureRequest& request,
                                  const ProgressFn& progress = nullptr);

}  // namespace sp::capture
