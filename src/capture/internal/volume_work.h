// What a capture knows and decides about each selected volume, filled in by its parts in turn:
// preflight (record, size, estimate, drive path), incremental planning (incremental,
// prev_bitmap, note), the point's start (new_bitmap) and the stream (to_read).
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "catalog/records.h"

namespace sp::capture::internal {

struct VolumeWork {
  catalog::VolumeRecord record;
  uint64_t size = 0;
  uint64_t estimate = 0;  // upper bound of what it may add to the repository
  uint64_t to_read = 0;   // what the stream is expected to read: allocated, or dirty bytes
  bool incremental = false;
  std::string prev_bitmap;
  std::string new_bitmap;
  std::string drive_path;
  std::string note;  // why a full read, when an incremental was possible in principle
};

// "VM 'web01'", for messages.
inline std::string Label(const catalog::VmRecord& vm) { return absl::StrCat("VM '", vm.name, "'"); }

// The QOM path of a disk's block backend, as stillpoint names the disks of the VMs it launches.
inline std::string DrivePath(const catalog::VolumeRecord& volume) {
  return absl::StrCat("/machine/peripheral/", volume.name, "/virtio-backend");
}

}  // namespace sp::capture::internal
