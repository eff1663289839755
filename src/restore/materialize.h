// restore/: turning recovery points back into disks and VMs. Materializing a volume of a recovery
// point as an image file (qcow2 or raw, holes where the point has zero chunks), checksums of image
// files, and the fault switch the restore tests use.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "platform/status.h"
#include "repo/repository.h"

namespace sp::restore {

enum class ImageFormat { kQcow2, kRaw };

const char* ImageFormatName(ImageFormat format);  // "qcow2" | "raw"
// "qcow2" or "raw"; InvalidArgument otherwise.
StatusOr<ImageFormat> ParseImageFormat(absl::string_view text);

struct MaterializeStats {
  uint64_t size = 0;        // volume size
  uint64_t data_bytes = 0;  // bytes of non-zero chunks written
  uint64_t zero_bytes = 0;  // bytes left as holes
  double millis = 0;
};

// Called after every chunk with the bytes done so far and the volume size. May be null.
using MaterializeProgress = std::function<void(uint64_t done, uint64_t total)>;

// Writes volume `volume` of recovery point `point_id` to a new image file `path` in `format`.
// Only non-zero chunks are written; zero chunks stay holes (a sparse raw file, unallocated qcow2
// clusters). The image appears under `path` only once complete (written beside it as
// `path`.partial, then renamed through `fs`); on error nothing is left at `path` and the partial
// file is removed. The file has exactly `mode` from its creation on, before any data is in it
// (default: the owner's only). AlreadyExists when `path` exists; errors of the repository
// (DataLoss, NotFound), of qemu-img and qemu-nbd, and of `fs`.
StatusOr<MaterializeStats> MaterializeVolume(repo::Repository& repo, absl::string_view point_id,
                                             absl::string_view volume, const std::string& path,
                                             ImageFormat format,
                                             const MaterializeProgress& progress = nullptr,
                                             unsigned mode = kOwnerFileMode,
                                             FileSystem* fs = FileSystem::Posix());

// SHA-256 (hex) of the whole file at `path` and its size.
struct FileDigest {
  std::string sha256;
  uint64_t size = 0;
};
StatusOr<FileDigest> HashFile(const std::string& path);

}  // namespace sp::restore
