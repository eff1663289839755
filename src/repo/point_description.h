// What a recovery point records about itself beside its data: how consistent it is and why, how
// it was taken (power state, policy, full or incremental, timings, bytes read), each captured
// volume as the capture saw it, the VM's configuration (what a VM made from the point needs), the
// guest's mounted filesystems, the ext4 journals checked, notes, and where an imported point came
// from. The capture and the import write it; restore, export and the CLI read it.
//
// Stored as the JSON object "point_description" of a manifest (and of an export manifest);
// docs/repository-format.md lists every field. A stored description is outside data (a damaged
// repository, an export anyone may have written): DecodePointDescription checks every field's
// type and range and names the field in its error; it never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "platform/status.h"

namespace sp::repo {

// kUnknown: not recorded; only in points converted from version-1 data that lacked it.
enum class PointConsistency { kUnknown, kApplication, kCrash };
// "application", "crash", "unknown".
const char* PointConsistencyName(PointConsistency consistency);

// Milliseconds spent in each part of the capture (0: the part did not happen).
struct PointTimings {
  double preflight_ms = 0;
  double prepare_ms = 0;
  double freeze_ms = 0;
  double qmp_ms = 0;     // the point-in-time cut
  double paused_ms = 0;  // vCPUs paused for the cut
  double thaw_ms = 0;
  double frozen_window_ms = 0;  // from the freeze to the thaw
  double stream_ms = 0;
  bool operator==(const PointTimings&) const = default;
};

struct PointBytes {
  uint64_t logical = 0;  // sum of the captured volumes' sizes
  uint64_t read = 0;     // read from the VM's disks (allocated, or changed since the parent)
  bool operator==(const PointBytes&) const = default;
};

// A volume as the capture saw it.
struct PointVolume {
  std::string name;
  uint64_t size = 0;
  bool boot = false;
  std::string format;        // of the VM's image: "qcow2", "raw"
  std::string serial;        // as the guest sees the disk
  bool incremental = false;  // only the changes since the parent were read
  std::string bitmap;        // the dirty bitmap this point left for the next incremental, or ""
  bool operator==(const PointVolume&) const = default;
};

// A filesystem the guest had mounted, and the point's volumes it lives on.
struct PointFilesystem {
  std::string mountpoint;
  std::string type;
  std::vector<std::string> volumes;
  bool operator==(const PointFilesystem&) const = default;
};

// An ext4 filesystem found on a captured volume (the truth check of an application-consistent
// point: its journal must be clean).
struct PointExt4 {
  std::string volume;
  std::string where;  // "whole volume", "MBR partition 1", "GPT partition 2", ...
  uint64_t offset = 0;
  std::string kind;
  std::string label;
  std::string uuid;
  bool needs_recovery = false;
  bool operator==(const PointExt4&) const = default;
};

struct PointVmVolume {
  std::string name;
  std::string path;
  std::string format;
  bool boot = false;
  std::string serial;
  std::string node_name;
  bool operator==(const PointVmVolume&) const = default;
};

struct PointNic {
  std::string mac;
  std::string network = "none";
  bool operator==(const PointNic&) const = default;
};

struct PointKernelBoot {
  std::string kernel, initrd, append;
  bool operator==(const PointKernelBoot&) const = default;
};

// The VM as the catalog knew it at capture. The defaults are those a version-1 record that
// lacked a field is read with.
struct PointVm {
  int64_t catalog_id = 0;  // the VM's row in the capturing host's catalog
  std::string uuid;
  std::string name;
  std::string origin = "managed";  // "managed" | "attached"
  std::string state;               // power state at capture, e.g. "running"
  std::string state_reason;
  std::string state_changed;  // a time, as text
  std::string created;        // a time, as text
  int vcpus = 1;              // 1..1024
  int64_t memory_mib = 512;   // 1..2^30
  std::string firmware = "bios";
  bool guest_agent = true;
  std::string consistency_policy = "prefer-app";
  std::optional<PointKernelBoot> kernel;  // direct kernel boot
  std::optional<std::string> qmp_socket;  // attached VMs only
  std::optional<std::string> qga_socket;  // attached VMs only
  std::optional<int64_t> space_limit_bytes;
  std::vector<PointVmVolume> volumes;  // every volume the VM had, captured or not
  std::vector<PointNic> nics;

  const PointVmVolume* FindVolume(absl::string_view volume_name) const;
  bool operator==(const PointVm&) const = default;
};

// Where an imported point came from.
struct PointImport {
  std::string from;  // the export directory
  std::string original_point_id;
  std::string original_created;  // times, as text
  std::string time;
  bool operator==(const PointImport&) const = default;
};

struct PointDescription {
  PointConsistency consistency = PointConsistency::kUnknown;
  std::string reason;                   // why that consistency, in words
  std::string power_state = "unknown";  // "running", "stopped-clean", ... ("unknown": as above)
  std::string policy = "unknown";       // "require-app" | "prefer-app" | "crash-only" | "unknown"
  std::string agent_version;            // of the guest agent that answered, or ""
  bool incremental = false;             // some volume was read as changes only
  std::vector<std::string> notes;
  PointTimings timings;
  PointBytes bytes;
  std::vector<PointVolume> volumes;
  std::vector<PointFilesystem> guest_filesystems;
  std::vector<PointExt4> ext4;
  std::optional<PointVm> vm;  // none: a VM cannot be made from the point
  std::optional<PointImport> imported;

  // The captured volume `name`, or nullptr.
  const PointVolume* FindVolume(absl::string_view name) const;
  bool operator==(const PointDescription&) const = default;
};

// Which layout a stored description has.
enum class DescriptionLayout {
  kCurrent,  // manifest version 2, export version 2: every field the encoder writes is required
  // The free-form "extras" of version-1 manifests and exports: the same fields, each of which may
  // be absent (and then takes the default above); types and ranges are checked all the same.
  kVersion1Extras,
};

// The JSON form (the keys are the same as version 1's "extras").
nlohmann::json EncodePointDescription(const PointDescription& description);

// Reads a stored description. DataLoss "<where>: field 'vm.vcpus' must be an integer, got
// string" for a missing required field, a wrong type or an impossible value (a negative size,
// vcpus 0, an unknown consistency...). `where` names the document ("recovery point 2026…").
// Fields it does not know are ignored.
StatusOr<PointDescription> DecodePointDescription(
    const nlohmann::json& value, absl::string_view where,
    DescriptionLayout layout = DescriptionLayout::kCurrent);

}  // namespace sp::repo
