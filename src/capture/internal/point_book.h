// The books of one recovery point: its writer in the repository, its row in the catalog's index
// of points and the VM's events about it. A point is begun (row "in-progress"), then committed
// (the manifest is the commit; the row is rebuilt from it) or failed (the writer aborted, the row
// marked failed with the reason, or removed when no data had moved: a refusal is an event, not a
// point).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "capture/capture.h"
#include "capture/internal/volume_work.h"
#include "capture/policy.h"
#include "catalog/catalog.h"
#include "catalog/recovery_points.h"
#include "repo/repository.h"

namespace sp::capture::internal {

// What to ask the repository for: the VM, the point's name (the VM's by default) and
// description, `parent_id` (empty for a full point), the estimate and the VM's space limit.
repo::RecoveryPointRequest PointRequest(const catalog::VmRecord& vm, const CaptureRequest& request,
                                        const std::vector<VolumeWork>& volumes,
                                        const std::string& parent_id);

class PointBook {
 public:
  // Not owned; they outlive the book.
  PointBook(catalog::Catalog* catalog, repo::Repository* repo, catalog::VmRecord vm)
      : catalog_(catalog), repo_(repo), vm_(std::move(vm)) {}

  // Begins the point: the repository's writer (ResourceExhausted over the space limit), then
  // the row "in-progress" of `volumes`. Points of the VM still "in-progress" belong to captures
  // that died (the caller holds the VM's capture lock): they are marked failed.
  Status Begin(const repo::RecoveryPointRequest& request, const std::vector<VolumeWork>& volumes);
  bool begun() const { return writer_ != nullptr; }
  // REQUIRES: begun().
  const std::string& id() const { return writer_->id(); }
  uint32_t chunk_size() const { return repo_->config().chunk_size; }

  // A volume's writer. From the first one on, data has moved: a failure leaves a failed point.
  StatusOr<repo::VolumeWriter*> AddVolume(const std::string& name, uint64_t size);

  // Commits with `description`; returns the point's id. The row is then made from the manifest
  // written and the event "snapshot.created" says what `verdict` found. On error the writer is
  // aborted.
  StatusOr<std::string> Commit(const repo::PointDescription& description, const Verdict& verdict);
  repo::WriteStats stats() const { return writer_->stats(); }

  // Drops the point's data; returns false when no point was begun.
  bool Abort();
  // Records `reported` as the reason the capture failed: on the point's row (see the top of this
  // file) and as the event "snapshot.failed".
  void RecordFailure(const Status& reported);

 private:
  Status MarkAbandoned();

  catalog::Catalog* catalog_;
  repo::Repository* repo_;
  catalog::VmRecord vm_;
  std::unique_ptr<catalog::RecoveryPointIndex> index_;
  std::unique_ptr<repo::RecoveryPointWriter> writer_;
  bool data_moved_ = false;
};

}  // namespace sp::capture::internal
