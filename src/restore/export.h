// Recovery points as plain files: an export directory that standard tools can read on any host,
// and importing such a directory into a repository.
//
// An export directory holds exactly:
//   stillpoint-export.json   the manifest: format name and version, the point's identity, its
//                            description (repo/point_description.h: VM configuration, consistency
//                            and reason, timings...), and per volume its image file, format,
//                            virtual size, file size, SHA-256
//   <volume>.qcow2|.raw      one image per exported volume
// Import trusts nothing in it: the manifest is parsed strictly, every file is checked (name,
// size, checksum, format, virtual size, no backing file) before any data enters the repository,
// and files the manifest does not list are refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/status.h"
#include "repo/repository.h"
#include "restore/materialize.h"

namespace sp::restore {

// Version 2 holds the point's typed "point_description"; version 1 (still imported) held the
// free-form "extras" of version-1 manifests.
inline constexpr int kExportFormatVersion = 2;
inline constexpr int kOldestExportFormatVersion = 1;
inline constexpr char kExportFormatName[] = "stillpoint-export";
inline constexpr char kExportManifestFile[] = "stillpoint-export.json";
inline constexpr uint64_t kMaxExportManifestBytes = 16u << 20;

struct ExportVolume {
  std::string name;
  std::string file;  // a plain file name inside the export directory
  ImageFormat format = ImageFormat::kQcow2;
  uint64_t size = 0;        // virtual size: what the guest sees
  uint64_t file_bytes = 0;  // size of the image file
  std::string sha256;       // of the image file, lower-case hex
  bool boot = false;
};

struct ExportManifest {
  int version = kExportFormatVersion;  // as read; EncodeExportManifest writes the current one
  std::string point_id;
  std::string vm_id;
  std::string vm_name;
  std::string name;
  std::string description;
  int64_t created_micros = 0;
  int64_t exported_micros = 0;
  repo::PointDescription point_description;
  std::vector<ExportVolume> volumes;
};

std::string EncodeExportManifest(const ExportManifest& manifest);
// Parses and checks an export manifest: InvalidArgument says what is wrong with it (malformed,
// missing or mistyped fields, in the point's description too, a file name that is not a plain
// name inside the directory, duplicate names or files, a bad checksum text); FailedPrecondition
// for a format version this stillpoint does not read.
StatusOr<ExportManifest> ParseExportManifest(absl::string_view text);

struct ExportRequest {
  std::string point_id;
  std::string dir;  // created when missing; must not hold an export yet
  ImageFormat format = ImageFormat::kQcow2;
  std::vector<std::string> volumes;  // empty: every volume of the point
  // Mode of the files written (images, manifest); directories created get DirModeFor(it).
  unsigned file_mode = kOwnerFileMode;
};

// An export's file mode as a user writes it ("0640", "640"): octal, the owner may read and write,
// nobody may execute. InvalidArgument says what is wrong.
StatusOr<unsigned> ParseExportMode(absl::string_view text);

struct ExportResult {
  ExportManifest manifest;
  std::vector<std::string> warnings;  // e.g. a mounted guest filesystem left out
};

// Writes the export; the manifest last, so a directory without it is an unfinished export.
// AlreadyExists when `dir` already holds an export or one of its image files.
StatusOr<ExportResult> ExportPoint(repo::Repository& repo, const ExportRequest& request);

// Volumes of the point's VM (as recorded at capture) that `selected` leaves out, as warnings that
// say they are not in `target` ("the export"); those on which the guest had a filesystem mounted
// name it.
std::vector<std::string> LeftOutVolumes(const repo::PointDescription& recorded,
                                        const std::vector<std::string>& selected,
                                        absl::string_view target);

struct ImportResult {
  std::string point_id;  // the new recovery point
  ExportManifest manifest;
  repo::Manifest point;  // as written
};

// Validates the export in `dir` completely, then adds it to `repo` as a new recovery point of
// the same VM identity. Nothing is added unless every check passed and the point committed.
// InvalidArgument / DataLoss / FailedPrecondition name the file and what is wrong.
StatusOr<ImportResult> ImportPoint(repo::Repository& repo, const std::string& dir);

}  // namespace sp::restore
