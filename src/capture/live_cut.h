// The point-in-time cut of a running VM's disks, through QMP (QEMU 7.2):
//
//   Prepare  (no freeze needed)  per volume: a scratch qcow2 on local storage, a
//            copy-before-write filter C over the disk's format node with the scratch as target
//            (on-cbw-error=break-snapshot: a full scratch fails the snapshot, never the guest).
//   Cut      (under the freeze, if any)  one transaction: a new persistent dirty bitmap per disk
//            (+ disable the previous one for an incremental); qom-set every disk's drive to its
//            filter — the point in time. Without a freeze the vCPUs are paused (`stop` ... `cont`)
//            around it, which makes the cut of several disks one atomic point in time.
//   Export   snapshot-access node S over C per volume, QEMU's NBD server on a unix socket, one
//            read-only export per volume (with the previous bitmap for an incremental).
//   Teardown in the order QEMU needs: block jobs, exports, NBD server, S, drive back to the
//            format node, C, scratch node, scratch file; then the bitmaps: on success the
//            previous one goes, the new one stays as the base of the next incremental; on failure
//            the new one is merged back into the previous one (re-enabled), so the next
//            incremental stays correct.
//
// Every change is decided from QEMU's graph as it is when the change is made (the exports and
// nodes that exist, each device's drive read with qom-get), never from what this process believes
// it set up: a change that is a no-op in QEMU's eyes (qom-set of a drive to the node it already
// has) aborts QEMU 7.2, and one made out of order (the drive moved back while a snapshot-access
// node still sits on the filter) is a permission conflict. The same teardown therefore removes
// what a capture killed at any step left behind.
//
// Fault points (see platform/fault.h), in the order a capture passes them:
//   prepare.scratch-added, prepare.filters-added, cut.paused, cut.transaction, cut.switched-first,
//   cut.switched, export.access-added, export.server-started, export.exported,
//   teardown.jobs-cancelled, teardown.exports-deleted, teardown.server-stopped,
//   teardown.access-deleted, teardown.switched-back, teardown.filters-deleted,
//   teardown.nodes-deleted; the same steps of the clean-up after an interrupted capture as
//   cleanup.*. The capture adds cut.frozen, cut.thawed, stream.chunk, commit.before, commit.after.
#pragma once

#include <string>
#include <vector>

#include "platform/status.h"
#include "qmp/qmp_client.h"
#include "vm/machine.h"
#include "vm/runtime.h"

namespace sp::capture {

struct VolumeCut {
  std::string volume;       // the volume's name; also its NBD export name
  std::string format_node;  // the disk's qcow2/raw format node (bitmaps live here)
  std::string drive_path;   // QOM path of the device's block backend, whose "drive" is switched
  uint64_t size = 0;
  std::string prev_bitmap;  // incremental base; empty for a full
  std::string new_bitmap;   // created at the cut; empty = none (e.g. raw images)
};

struct CutTimings {
  double qmp_ms = 0;     // stop + transaction + qom-sets + cont
  double paused_ms = 0;  // vCPUs paused
};

class LiveCut {
 public:
  // `qmp` is not owned. `scratch_dir` on local storage; `nbd_socket` a short path.
  LiveCut(qmp::Session* qmp, std::string scratch_dir, std::string nbd_socket);
  ~LiveCut();  // tears down whatever is still set up (as a failure)

  Status Prepare(std::vector<VolumeCut> volumes);
  // The point in time. Call with the guest frozen when application consistency is wanted.
  // `pause_vcpus`: stop the guest around the switch, so that several disks are cut at one
  // instant without a freeze; with the filesystems frozen the pause adds nothing and is skipped.
  StatusOr<CutTimings> Cut(bool pause_vcpus);
  Status Export();
  // `success`: keep the new bitmaps as incremental bases. Safe to call more than once.
  Status Teardown(bool success);

  const std::string& nbd_socket() const { return nbd_socket_; }
  const std::vector<VolumeCut>& volumes() const { return volumes_; }

 private:
  struct Stage {
    bool scratch_file = false, new_bitmap = false, prev_disabled = false;
  };
  std::string Node(const char* kind, size_t index) const;
  Status PrepareVolume(size_t index);
  Status Switch();
  Status SettleBitmaps(size_t index, bool success);

  qmp::Session* qmp_;
  std::string scratch_dir_;
  std::string nbd_socket_;
  std::vector<VolumeCut> volumes_;
  std::vector<Stage> stages_;
  bool server_started_ = false;
  bool touched_qemu_ = false;
  bool torn_down_ = false;
};

// Whether the dirty bitmap `name` exists on `node` and can serve an incremental: present,
// persistent, consistent. Returns the reason in words when it cannot.
StatusOr<std::string> CheckBitmap(qmp::Session* qmp, const std::string& node,
                                  const std::string& name);

// A disk device and the format node its drive belongs on.
struct DeviceDrive {
  std::string drive_path;  // QOM path of the device's block backend
  std::string format_node;
};

// Removes every capture node of stillpoint's from QEMU, reading the graph before each step:
// block jobs and NBD exports named "sp-...", the NBD server (when `stop_server` or an export was
// found), snapshot-access nodes, drives of `devices` that sit on a copy-before-write filter (moved
// back to their format node), then the filters and scratch nodes. Returns true when anything was
// found. Errors name the step and the node; what could be removed before it is gone. `stage`
// names its fault points: "teardown" (a capture's own) or "cleanup" (after an interrupted one).
StatusOr<bool> RemoveCaptureNodes(qmp::Session* qmp, const std::vector<DeviceDrive>& devices,
                                  bool stop_server, absl::string_view stage);

// The node a device's drive is attached to right now (qom-get of its "drive" property).
StatusOr<std::string> CurrentDrive(qmp::Session* qmp, const std::string& drive_path);

// Names of stillpoint's own bitmaps ("stillpoint-...") on `node`.
StatusOr<std::vector<std::string>> OwnBitmaps(qmp::Session* qmp, const std::string& node);

inline constexpr char kBitmapPrefix[] = "stillpoint-";
// Written to the scratch directory before QEMU is touched: which devices the capture may switch,
// so that the clean-up after it was killed knows where each drive belongs.
inline constexpr char kDevicesNote[] = "devices.json";

// The devices noted in `scratch_dir` (empty when there is no note or it is unreadable: the
// capture died before it touched QEMU, or the note was cut short).
std::vector<DeviceDrive> ReadDevicesNote(const std::string& scratch_dir);

}  // namespace sp::capture
