// The manifest of a recovery point: what it is (VM, name, and the description of how it was taken:
// consistency and the reason, timings, the VM's configuration...), which volumes it holds and
// where their indexes are. Written last: a recovery point exists exactly when its manifest does.
// Stored as JSON with a SHA-256 checksum; docs/repository-format.md describes both versions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/status.h"
#include "repo/internal/format.h"
#include "repo/point_description.h"

namespace sp::repo {

// Version 2 holds a typed "point_description"; version 1 (still read) held free-form "extras".
inline constexpr int kManifestVersion = 2;
inline constexpr int kOldestManifestVersion = 1;

struct ManifestVolume {
  std::string name;        // as the capture named it ("vda", "data")
  uint64_t size = 0;       // bytes
  std::string index_file;  // file name inside the point's directory
  Digest index_sha256{};   // of the whole index file
  uint64_t chunks = 0;
  uint64_t zero_chunks = 0;
  uint64_t new_chunks = 0;        // chunks this point stored that were not in the repository
  uint64_t new_stored_bytes = 0;  // their size on disk
};

struct Manifest {
  int version = kManifestVersion;  // as read; EncodeManifest always writes kManifestVersion
  std::string id;
  std::string vm_id;
  std::string vm_name;
  std::string name;
  std::string description;  // free text given at capture
  std::string parent_id;    // empty when none
  int64_t created_micros = 0;
  int64_t committed_micros = 0;
  uint32_t chunk_size = 0;
  std::vector<ManifestVolume> volumes;
  PointDescription point_description;  // consistency, reason, timings, VM configuration...

  uint64_t LogicalBytes() const;
  const ManifestVolume* FindVolume(absl::string_view name) const;
};

// Version kManifestVersion, whatever `manifest.version` says.
std::string EncodeManifest(const Manifest& manifest);
// DataLoss when `text` is not a well-formed manifest of a known version with a good checksum;
// the message names the field that is missing or wrong. Never throws.
StatusOr<Manifest> DecodeManifest(absl::string_view text);

}  // namespace sp::repo
