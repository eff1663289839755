#include "block/stream.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

namespace sp::block {

const char* ChunkKindName(ChunkKind kind) {
  switch (kind) {
    case ChunkKind::kData:
      return "data";
    case ChunkKind::kZero:
      return "zero";
    case ChunkKind::kReuseParent:
      return "reuse";
    case ChunkKind::kPatch:
      return "patch";
  }
  return "?";
}

bool IsAllZero(const char* data, size_t length) {
  if (length == 0) return true;
  // Byte 0 is zero and every byte equals its successor.
  return data[0] == 0 && std::memcmp(data, data + 1, length - 1) == 0;
}

namespace {

// Extent information ahead of the chunk being decided, fetched in windows.
class ExtentCursor {
 public:
  static constexpr uint64_t kWindow = 1u << 30;

  explicit ExtentCursor(BlockSource& source) : source_(source) {}

  // Whether [begin, end) reads as zero everywhere, and whether any of it is dirty.
  Status Classify(uint64_t begin, uint64_t end, bool* all_zero, bool* any_dirty) {
    while (!extents_.empty() && extents_.front().offset + extents_.front().length <= begin) {
      extents_.pop_front();
    }
    while (fetched_end_ < end) {
      uint64_t length = std::min(kWindow, source_.size() - fetched_end_);
      SP_ASSIGN_OR_RETURN(std::vector<Extent> more, source_.Extents(fetched_end_, length));
      extents_.insert(extents_.end(), more.begin(), more.end());
      fetched_end_ += length;
    }
    *all_zero = true;
    *any_dirty = false;
    for (const Extent& extent : extents_) {
      if (extent.offset >= end) break;
      if (extent.offset + extent.length <= begin) continue;
      *all_zero = *all_zero && extent.zero;
      *any_dirty = *any_dirty || extent.dirty;
    }
    return absl::OkStatus();
  }

  // The sub_size-aligned pieces of [begin, end) (numbered from `begin`) that hold a dirty extent,
  // in order, and for each whether it holds data (false: it reads as zeros everywhere).
  // REQUIRES: Classify(begin, end, ...) was called last.
  void DirtySubChunks(uint64_t begin, uint64_t end, uint32_t sub_size, std::vector<uint32_t>* dirty,
                      std::vector<bool>* has_data) const {
    uint64_t count = (end - begin + sub_size - 1) / sub_size;
    std::vector<uint8_t> state(count, 0);  // bit 0: dirty, bit 1: data
    for (const Extent& extent : extents_) {
      if (extent.offset >= end) break;
      if (extent.offset + extent.length <= begin) continue;
      uint64_t first = (std::max(extent.offset, begin) - begin) / sub_size;
      uint64_t last = (std::min(extent.offset + extent.length, end) - 1 - begin) / sub_size;
      uint8_t bits = static_cast<uint8_t>((extent.dirty ? 1 : 0) | (extent.zero ? 0 : 2));
      for (uint64_t k = first; k <= last; ++k) state[k] = static_cast<uint8_t>(state[k] | bits);
    }
    dirty->clear();
    has_data->clear();
    for (uint64_t k = 0; k < count; ++k) {
      if ((state[k] & 1) == 0) continue;
      dirty->push_back(static_cast<uint32_t>(k));
      has_data->push_back((state[k] & 2) != 0);
    }
  }

 private:
  BlockSource& source_;
  std::deque<Extent> extents_;
  uint64_t fetched_end_ = 0;
};

// What the stream does with one chunk.
struct ChunkPlan {
  ChunkKind kind = ChunkKind::kData;
  std::vector<uint32_t> dirty;  // kPatch: the dirty sub-chunks
  std::vector<bool> has_data;   // kPatch: per dirty sub-chunk, whether it must be read
  uint64_t bytes_to_read = 0;
};

uint64_t SubChunkLength(uint64_t chunk_length, uint32_t sub_size, uint32_t sub) {
  return std::min<uint64_t>(sub_size, chunk_length - static_cast<uint64_t>(sub) * sub_size);
}

StatusOr<ChunkPlan> PlanChunk(ExtentCursor& extents, const StreamOptions& options, uint64_t index,
                              uint64_t begin, uint64_t length) {
  ChunkPlan plan;
  bool all_zero = false;
  bool any_dirty = false;
  SP_RETURN_IF_ERROR(extents.Classify(begin, begin + length, &all_zero, &any_dirty));
  if (all_zero) {
    plan.kind = ChunkKind::kZero;
    return plan;
  }
  if (options.incremental && !any_dirty) {
    plan.kind = ChunkKind::kReuseParent;
    return plan;
  }
  const PatchOptions& patches = options.patches;
  if (options.incremental && patches.sub_chunk_size > 0 && patches.fits) {
    extents.DirtySubChunks(begin, begin + length, patches.sub_chunk_size, &plan.dirty,
                           &plan.has_data);
    if (patches.fits(index, plan.dirty)) {
      plan.kind = ChunkKind::kPatch;
      for (size_t i = 0; i < plan.dirty.size(); ++i) {
        if (!plan.has_data[i]) continue;
        plan.bytes_to_read += SubChunkLength(length, patches.sub_chunk_size, plan.dirty[i]);
      }
      return plan;
    }
  }
  plan.kind = ChunkKind::kData;
  plan.bytes_to_read = length;
  return plan;
}

struct Slot {
  uint64_t index = 0;
  ChunkKind kind = ChunkKind::kData;
  std::string data;            // kPatch: the dirty sub-chunks one after the other
  std::vector<uint32_t> subs;  // kPatch: the dirty sub-chunks
  int reads_left = 0;
};

class Streamer {
 public:
  Streamer(BlockSource& source, uint32_t chunk_size, const StreamOptions& options,
           const ChunkSink& sink, const StreamProgress& progress)
      : source_(source),
        chunk_size_(chunk_size),
        options_(options),
        sink_(sink),
        progress_(progress),
        extents_(source) {
    stats_.volume_size = source.size();
    stats_.chunk_count = (source.size() + chunk_size - 1) / chunk_size;
  }

  // Waits for reads still in flight so that no buffer of ours is written after we are gone.
  ~Streamer() {
    while (source_.reads_in_flight() > 0 && source_.WaitForReads().ok()) {
    }
  }

  StatusOr<StreamStats> Run() {
    while (stats_.chunks_done < stats_.chunk_count) {
      SP_RETURN_IF_ERROR(Fill());
      SP_RETURN_IF_ERROR(DeliverReady());
      if (!queue_.empty() && queue_.front().reads_left > 0) SP_RETURN_IF_ERROR(AwaitReads());
    }
    return stats_;
  }

 private:
  static constexpr size_t kMaxQueued = 4096;  // decided chunks waiting for an earlier read
  static constexpr size_t kMaxRequests = 64;  // reads in flight (small ones, for patches)

  uint64_t ChunkLength(uint64_t index) const {
    return std::min<uint64_t>(chunk_size_, source_.size() - index * chunk_size_);
  }

  // Decides chunks ahead and starts reads while the in-flight budget (reads_in_flight whole
  // chunks' worth of bytes, and of requests) allows.
  Status Fill() {
    uint64_t byte_budget = static_cast<uint64_t>(options_.reads_in_flight) * chunk_size_;
    while (next_ < stats_.chunk_count && bytes_in_flight_ < byte_budget &&
           source_.reads_in_flight() < kMaxRequests && queue_.size() < kMaxQueued) {
      uint64_t begin = next_ * chunk_size_;
      uint64_t length = ChunkLength(next_);
      SP_ASSIGN_OR_RETURN(ChunkPlan plan, PlanChunk(extents_, options_, next_, begin, length));
      Slot& slot = queue_.emplace_back();
      slot.index = next_++;
      slot.kind = plan.kind;
      if (plan.kind == ChunkKind::kData) {
        slot.data.resize(length);
        SP_RETURN_IF_ERROR(StartReads(slot, begin, length, 0));
      } else if (plan.kind == ChunkKind::kPatch) {
        SP_RETURN_IF_ERROR(StartPatch(slot, plan, begin, length));
      }
    }
    return absl::OkStatus();
  }

  // Reads the dirty sub-chunks that hold data into slot.data, one request per run of adjacent
  // ones (split at max_read_size); the others stay zeros.
  Status StartPatch(Slot& slot, const ChunkPlan& plan, uint64_t begin, uint64_t length) {
    const uint32_t sub_size = options_.patches.sub_chunk_size;
    slot.subs = plan.dirty;
    uint64_t total = 0;
    for (uint32_t sub : plan.dirty) total += SubChunkLength(length, sub_size, sub);
    slot.data.assign(total, '\0');
    uint64_t at = 0;
    for (size_t i = 0; i < plan.dirty.size();) {
      size_t run = i;
      uint64_t run_length = 0;
      while (run < plan.dirty.size() && plan.has_data[run] &&
             plan.dirty[run] == plan.dirty[i] + (run - i)) {
        run_length += SubChunkLength(length, sub_size, plan.dirty[run]);
        ++run;
      }
      if (run == i) {  // a zero sub-chunk: nothing to read
        at += SubChunkLength(length, sub_size, plan.dirty[i]);
        ++i;
        continue;
      }
      uint64_t offset = begin + static_cast<uint64_t>(plan.dirty[i]) * sub_size;
      SP_RETURN_IF_ERROR(StartReads(slot, offset, run_length, at));
      at += run_length;
      i = run;
    }
    return absl::OkStatus();
  }

  // Reads `length` bytes at `offset` into slot.data at `at`, in pieces the source accepts.
  Status StartReads(Slot& slot, uint64_t offset, uint64_t length, uint64_t at) {
    uint64_t piece_limit = std::max<uint64_t>(1, source_.max_read_size());
    for (uint64_t done = 0; done < length; done += piece_limit) {
      uint64_t piece = std::min(piece_limit, length - done);
      SP_ASSIGN_OR_RETURN(ReadTicket ticket,
                          source_.StartRead(offset + done, piece, slot.data.data() + at + done));
      owner_[ticket] = {slot.index, piece};
      ++slot.reads_left;
      bytes_in_flight_ += piece;
      stats_.bytes_read += piece;
    }
    return absl::OkStatus();
  }

  Status AwaitReads() {
    SP_ASSIGN_OR_RETURN(std::vector<ReadTicket> done, source_.WaitForReads());
    for (ReadTicket ticket : done) {
      auto it = owner_.find(ticket);
      if (it == owner_.end()) continue;
      Slot& slot = queue_[static_cast<size_t>(it->second.first - queue_.front().index)];
      --slot.reads_left;
      bytes_in_flight_ -= it->second.second;
      owner_.erase(it);
    }
    return absl::OkStatus();
  }

  // Hands finished chunks at the head of the queue to the sink, in index order.
  Status DeliverReady() {
    while (!queue_.empty() && queue_.front().reads_left == 0) {
      Slot slot = std::move(queue_.front());
      queue_.pop_front();
      uint64_t length = ChunkLength(slot.index);
      if (slot.kind == ChunkKind::kData && IsAllZero(slot.data.data(), slot.data.size())) {
        slot.kind = ChunkKind::kZero;
        slot.data = std::string();
      }
      Count(slot.kind, length);
      if (slot.kind == ChunkKind::kPatch) {
        SP_RETURN_IF_ERROR(options_.patches.sink(slot.index, SplitPatch(slot, length)));
      } else {
        SP_RETURN_IF_ERROR(sink_(slot.index, slot.kind, std::move(slot.data)));
      }
      ++stats_.chunks_done;
      if (progress_) progress_(stats_);
    }
    return absl::OkStatus();
  }

  SubChunks SplitPatch(const Slot& slot, uint64_t length) const {
    const uint32_t sub_size = options_.patches.sub_chunk_size;
    SubChunks subs;
    subs.reserve(slot.subs.size());
    uint64_t at = 0;
    for (uint32_t sub : slot.subs) {
      uint64_t sub_length = SubChunkLength(length, sub_size, sub);
      subs.emplace_back(sub, slot.data.substr(at, sub_length));
      at += sub_length;
    }
    return subs;
  }

  void Count(ChunkKind kind, uint64_t length) {
    switch (kind) {
      case ChunkKind::kData:
        ++stats_.data_chunks;
        break;
      case ChunkKind::kZero:
        ++stats_.zero_chunks;
        stats_.bytes_zero += length;
        break;
      case ChunkKind::kReuseParent:
        ++stats_.reused_chunks;
        stats_.bytes_reused += length;
        break;
      case ChunkKind::kPatch:
        ++stats_.patched_chunks;
        break;
    }
  }

  BlockSource& source_;
  uint32_t chunk_size_;
  const StreamOptions& options_;
  const ChunkSink& sink_;
  const StreamProgress& progress_;
  ExtentCursor extents_;
  StreamStats stats_;
  std::deque<Slot> queue_;  // decided chunks, in index order
  // Read in flight → (chunk index, bytes).
  std::map<ReadTicket, std::pair<uint64_t, uint64_t>> owner_;
  uint64_t next_ = 0;             // next chunk to decide
  uint64_t bytes_in_flight_ = 0;  // of reads outstanding
};

}  // namespace

StatusOr<uint64_t> BytesToRead(BlockSource& source, uint32_t chunk_size,
                               const StreamOptions& options) {
  ExtentCursor extents(source);
  uint64_t total = 0;
  uint64_t index = 0;
  for (uint64_t begin = 0; begin < source.size(); begin += chunk_size, ++index) {
    uint64_t end = std::min<uint64_t>(source.size(), begin + chunk_size);
    SP_ASSIGN_OR_RETURN(ChunkPlan plan, PlanChunk(extents, options, index, begin, end - begin));
    total += plan.bytes_to_read;
  }
  return total;
}

StatusOr<StreamStats> StreamVolume(BlockSource& source, uint32_t chunk_size,
                                   const StreamOptions& options, const ChunkSink& sink,
                                   const StreamProgress& progress) {
  if (chunk_size == 0 || options.reads_in_flight <= 0) {
    return absl::InvalidArgumentError("StreamVolume: chunk size and reads in flight must be > 0");
  }
  if (options.patches.sub_chunk_size > 0 && (!options.patches.fits || !options.patches.sink)) {
    return absl::InvalidArgumentError("StreamVolume: patches need a fits test and a sink");
  }
  Streamer streamer(source, chunk_size, options, sink, progress);
  return streamer.Run();
}

}  // namespace sp::block
