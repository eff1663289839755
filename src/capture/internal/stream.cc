#include "capture/internal/stream.h"

#include <algorithm>

#include "block/fs_probe.h"
#include "block/stream.h"
#include "platform/fault.h"

namespace sp::capture::internal {
namespace {

// How `volume` is read: for an incremental, chunks with few dirty sub-chunks become patches of
// the parent's chunks (only those sub-chunks are read) where the writer takes them.
block::StreamOptions OptionsFor(const VolumeWork& work, repo::VolumeWriter* volume) {
  block::StreamOptions options;
  options.incremental = work.incremental;
  if (work.incremental && volume->sub_chunk_size() > 0) {
    options.patches.sub_chunk_size = volume->sub_chunk_size();
    options.patches.fits = [volume](uint64_t index, const std::vector<uint32_t>& dirty) {
      return volume->PatchFits(index, dirty);
    };
    options.patches.sink = [volume](uint64_t index, block::SubChunks subs) {
      return volume->PutPatch(index, std::move(subs));
    };
  }
  return options;
}

// Streams the volumes one after the other, counting progress across all of them.
class Streamer {
 public:
  Streamer(uint32_t chunk_size, const ProgressFn& progress, uint64_t total,
           const std::atomic<bool>* cancel)
      : chunk_size_(chunk_size), progress_(progress), total_(total), cancel_(cancel) {}

  // Returns the bytes read from `source` into `volume`.
  StatusOr<uint64_t> Stream(block::BlockSource* source, const VolumeWork& work,
                            repo::VolumeWriter* volume);

 private:
  void Report(const std::string& volume, uint64_t volume_done) {
    if (progress_) progress_({volume, volume_done, total_, all_done_});
  }

  uint32_t chunk_size_;
  const ProgressFn& progress_;
  uint64_t total_;
  const std::atomic<bool>* cancel_;  // may be null
  uint64_t all_done_ = 0;
};

StatusOr<uint64_t> Streamer::Stream(block::BlockSource* source, const VolumeWork& work,
                                    repo::VolumeWriter* volume) {
  block::StreamOptions options = OptionsFor(work, volume);
  uint64_t base = all_done_;
  auto go_on = [&]() -> Status {
    FaultPoint("stream.chunk");
    if (cancel_ != nullptr && cancel_->load()) {
      return absl::CancelledError("the capture was cancelled");
    }
    return absl::OkStatus();
  };
  auto sink = [&](uint64_t index, block::ChunkKind kind, std::string data) -> Status {
    SP_RETURN_IF_ERROR(go_on());
    switch (kind) {
      case block::ChunkKind::kZero:
        return volume->PutZero(index);
      case block::ChunkKind::kReuseParent:
        return volume->ReuseParent(index);
      case block::ChunkKind::kData:
        return volume->PutChunk(index, std::move(data));
      case block::ChunkKind::kPatch:
        break;  // to options.patches.sink
    }
    return absl::InternalError("unknown chunk kind");
  };
  if (options.patches.sink) {
    options.patches.sink = [&, put = options.patches.sink](uint64_t index,
                                                           block::SubChunks subs) -> Status {
      SP_RETURN_IF_ERROR(go_on());
      return put(index, std::move(subs));
    };
  }
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

struct OpenVolumes {
  std::vector<std::unique_ptr<block::BlockSource>> sources;
  std::vector<repo::VolumeWriter*> writers;
};

// Opens every volume, adds it to the point (once all opened: a volume that cannot be opened
// moves no data) and fills in what each is expected to read.
StatusOr<OpenVolumes> OpenAll(std::vector<VolumeWork>& volumes, const SourceOpener& open,
                              PointBook* point, const std::string& vm_label) {
  OpenVolumes opened;
  for (VolumeWork& w : volumes) {
    block::ConnectOptions options;
    options.label = absl::StrCat("volume '", w.record.name, "' of ", vm_label);
    SP_ASSIGN_OR_RETURN(auto source, open(w, options));
    opened.sources.push_back(std::move(source));
  }
  for (size_t i = 0; i < volumes.size(); ++i) {
    SP_ASSIGN_OR_RETURN(repo::VolumeWriter * writer,
                        point->AddVolume(volumes[i].record.name, opened.sources[i]->size()));
    opened.writers.push_back(writer);
    SP_ASSIGN_OR_RETURN(volumes[i].to_read,
                        block::BytesToRead(*opened.sources[i], point->chunk_size(),
                                           OptionsFor(volumes[i], writer)));
  }
  return opened;
}

}  // namespace

StatusOr<StreamOutcome> StreamVolumes(std::vector<VolumeWork>& volumes, const SourceOpener& open,
                                      PointBook* point, bool check_journals,
                                      const std::string& vm_label, const ProgressFn& progress,
                                      const std::atomic<bool>* cancel) {
  const uint32_t chunk_size = point->chunk_size();
  SP_ASSIGN_OR_RETURN(OpenVolumes opened, OpenAll(volumes, open, point, vm_label));
  uint64_t total = 0;
  for (const VolumeWork& w : volumes) total += w.to_read;
  Streamer streamer(chunk_size, progress, total, cancel);
  StreamOutcome outcome;
  for (size_t i = 0; i < volumes.size(); ++i) {
    block::BlockSource* source = opened.sources[i].get();
    SP_ASSIGN_OR_RETURN(uint64_t read, streamer.Stream(source, volumes[i], opened.writers[i]));
    outcome.read_bytes += read;
    if (check_journals) CheckJournals(source, volumes[i], outcome);
    opened.sources[i].reset();  // a stopped VM's qemu-nbd ends with it
  }
  return outcome;
}

}  // namespace sp::capture::internal
