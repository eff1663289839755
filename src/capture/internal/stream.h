// The stream: every selected volume, live (QEMU's NBD export of the cut) or stopped (the image
// through qemu-nbd), read through one loop over block::BlockSource into the point's writer, with
// progress in bytes to read and, for an application-consistent point, the ext4 journals checked.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "block/block_source.h"
#include "capture/capture.h"
#include "capture/internal/point_book.h"
#include "capture/internal/volume_work.h"
#include "repo/point_description.h"

namespace sp::capture::internal {

// Opens one volume's source; `options` carries its label (and, for an incremental, the caller
// adds the dirty bitmap).
using SourceOpener = std::function<StatusOr<std::unique_ptr<block::BlockSource>>(
    const VolumeWork&, block::ConnectOptions)>;

struct StreamOutcome {
  uint64_t read_bytes = 0;
  std::vector<repo::PointExt4> ext4;        // every ext4 filesystem found (when checked)
  std::vector<std::string> dirty_journals;  // those needing journal recovery, in words
};

// Opens every volume first, so that the progress total (what will be read, from block status) is
// known before the first byte moves, fills in each volume's `to_read`, then streams them one
// after the other into `point`. `check_journals`: probe each volume for ext4 filesystems (the
// truth check of an application-consistent point). Errors are the sources' and the writer's,
// and Cancelled once `*cancel` (may be null) turns true.
StatusOr<StreamOutcome> StreamVolumes(std::vector<VolumeWork>& volumes, const SourceOpener& open,
                                      PointBook* point, bool check_journals,
                                      const std::string& vm_label, const ProgressFn& progress,
                                      const std::atomic<bool>* cancel = nullptr);

}  // namespace sp::capture::internal
