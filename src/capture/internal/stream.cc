#include "capture/internal/stream.h"

#include <algorithm>

#include "block/fs_probe.h"
#include "block/stream.h"
#include "platform/fault.h"

namespace sp::capture::internal {
namespace {

// Streams the volumes one after the other, counting progress across all of them.
class Streamer {
 public:
  Streamer(PointBook* point, uint32_t chunk_size, const ProgressFn& progress, uint64_t total,
           const std::atomic<bool>* cancel)
      : point_(point),
        chunk_size_(chunk_size),
        progress_(progress),
        total_(total),
        cancel_(cancel) {}

  // Returns the bytes read from `source`.
  StatusOr<uint64_t> Stream(block::BlockSource* source, const VolumeWork& work);

 private:
  void Report(const std::string& volume, uint64_t volume_done) {
    if (progress_) progress_({volume, volume_done, total_, all_done_});
  }

  PointBook* point_;
  uint32_t chunk_size_;
  const ProgressFn& progress_;
  uint64_t total_;
  const std::atomic<bool>* cancel_;  // may be null
  uint64_t all_done_ = 0;
};

StatusOr<uint64_t> Streamer::Stream(block::BlockSource* source, const VolumeWork& work) {
  SP_ASSIGN_OR_RETURN(repo::VolumeWriter * volume,
                      point_->AddVolume(work.record.name, source->size()));
  block::StreamOptions options;
  options.incremental = work.incremental;
  uint64_t base = all_done_;
  auto sink = [&](uint64_t index, block::ChunkKind kind, std::string data) -> Status {
    FaultPoint("stream.chunk");
    if (cancel_ != nullptr && cancel_->load()) {
      return absl::CancelledError("the capture was cancelled");
    }
    switch (kind) {
      case block::ChunkKind::kZero:
        return volume->PutZero(index);
      case block::ChunkKind::kReuseParent:
        return volume->ReuseParent(index);
      case block::ChunkKind::kData:
        return volume->PutChunk(index, std::move(data));
    }
    return absl::InternalError("unknown chunk kind");
  };
  // Progress counts what is read (holes and reused chunks cost nothing), so the ETA holds.
  auto report = [&](const block::StreamStats& done) {
    uint64_t volume_done = std::min(done.bytes_read, work.to_read);
    all_done_ = base + volume_done;
    Report(work.record.name, volume_done);
  };
  SP_ASSIGN_OR_RETURN(block::StreamStats stats,
                      block::StreamVolume(*source, chunk_size_, options, sink, report));
  all_done_ = base + work.to_read;
  Report(work.record.name, work.to_read);
  return stats.bytes_read;
}

// An application-consistent point must show it: every ext4 journal in it must be clean.
void CheckJournals(block::BlockSource* source, const VolumeWork& work, StreamOutcome& outcome) {
  auto found = block::ProbeExt4(*source);
  if (!found.ok()) return;
  for (const block::Ext4Info& fs : *found) {
    outcome.ext4.push_back(
        {work.record.name, fs.where, fs.offset, fs.kind, fs.label, fs.uuid, fs.needs_recovery});
    if (fs.needs_recovery) {
      outcome.dirty_journals.push_back(
          absl::StrCat("volume '", work.record.name, "' (", fs.where, ")"));
    }
  }
}

// Opens every volume and fills in what each is expected to read.
StatusOr<std::vector<std::unique_ptr<block::BlockSource>>> OpenAll(std::vector<VolumeWork>& volumes,
                                                                   const SourceOpener& open,
                                                                   uint32_t chunk_size,
                                                                   const std::string& vm_label) {
  std::vector<std::unique_ptr<block::BlockSource>> sources;
  block::StreamOptions stream_options;
  for (VolumeWork& w : volumes) {
    block::ConnectOptions options;
    options.label = absl::StrCat("volume '", w.record.name, "' of ", vm_label);
    SP_ASSIGN_OR_RETURN(auto source, open(w, options));
    stream_options.incremental = w.incremental;
    SP_ASSIGN_OR_RETURN(w.to_read, block::BytesToRead(*source, chunk_size, stream_options));
    sources.push_back(std::move(source));
  }
  return sources;
}

}  // namespace

StatusOr<StreamOutcome> StreamVolumes(std::vector<VolumeWork>& volumes, const SourceOpener& open,
                                      PointBook* point, bool check_journals,
                                      const std::string& vm_label, const ProgressFn& progress,
                                      const std::atomic<bool>* cancel) {
  const uint32_t chunk_size = point->chunk_size();
  SP_ASSIGN_OR_RETURN(auto sources, OpenAll(volumes, open, chunk_size, vm_label));
  uint64_t total = 0;
  for (const VolumeWork& w : volumes) total += w.to_read;
  Streamer streamer(point, chunk_size, progress, total, cancel);
  StreamOutcome outcome;
  for (size_t i = 0; i < volumes.size(); ++i) {
    SP_ASSIGN_OR_RETURN(uint64_t read, streamer.Stream(sources[i].get(), volumes[i]));
    outcome.read_bytes += read;
    if (check_journals) CheckJournals(sources[i].get(), volumes[i], outcome);
    sources[i].reset();  // a stopped VM's qemu-nbd ends with it
  }
  return outcome;
}

}  // namespace sp::capture::internal
