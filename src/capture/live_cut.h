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
//   Teardown in the order QEMU needs: exports, NBD server, S, drive back to the format node, C,
//            scratch node, scratch file; then the bitmaps: on success the previous one goes, the
//            new one stays as the base of the next incremental; on failure the new one is merged
//            back into the previous one (re-enabled), so the next incremental stays correct.
#pragma once

#include <string>
#include <vector>

#include "platform/status.h"
#include "qmp/qmp_client.h"

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
  LiveCut(qmp::Client* qmp, std::string scratch_dir, std::string nbd_socket);
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
    bool scratch_file = false, scratch_node = false, filter = false, switched = false;
    bool access = false, exported = false, new_bitmap = false, prev_disabled = false;
  };
  std::string Node(const char* kind, size_t index) const;
  Status TeardownVolume(size_t index);
  Status SettleBitmaps(size_t index, bool success);

  qmp::Client* qmp_;
  std::string scratch_dir_;
  std::string nbd_socket_;
  std::vector<VolumeCut> volumes_;
  std::vector<Stage> stages_;
  bool server_started_ = false;
  bool torn_down_ = false;
};

// Whether the dirty bitmap `name` exists on `node` and can serve an incremental: present,
// persistent, consistent. Returns the reason in words when it cannot.
StatusOr<std::string> CheckBitmap(qmp::Client* qmp, const std::string& node,
                                  const std::string& name);

// Removes what an interrupted capture (killed before its teardown) left in QEMU: exports, the
// NBD server, drives switched to a copy-before-write filter, and stillpoint's nodes. `volumes`
// gives each disk's format node and QOM drive path. Returns true when something was left over.
StatusOr<bool> CleanLeftovers(qmp::Client* qmp, const std::vector<VolumeCut>& volumes);

// Names of stillpoint's own bitmaps ("stillpoint-...") on `node`.
StatusOr<std::vector<std::string>> OwnBitmaps(qmp::Client* qmp, const std::string& node);

inline constexpr char kBitmapPrefix[] = "stillpoint-";

}  // namespace sp::capture
