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

 private:
  BlockSource& source_;
  std::deque<Extent> extents_;
  uint64_t fetched_end_ = 0;
};

struct Slot {
  uint64_t index = 0;
  ChunkKind kind = ChunkKind::kData;
  std::string data;
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

  uint64_t ChunkLength(uint64_t index) const {
    return std::min<uint64_t>(chunk_size_, source_.size() - index * chunk_size_);
  }

  // Decides chunks ahead and starts reads while the in-flight budget allows.
  Status Fill() {
    while (next_ < stats_.chunk_count && data_in_flight_ < options_.reads_in_flight &&
           queue_.size() < kMaxQueued) {
      uint64_t begin = next_ * chunk_size_;
      uint64_t length = ChunkLength(next_);
      bool all_zero = false;
      bool any_dirty = false;
      SP_RETURN_IF_ERROR(extents_.Classify(begin, begin + length, &all_zero, &any_dirty));
      Slot& slot = queue_.emplace_back();
      slot.index = next_++;
      if (all_zero) {
        slot.kind = ChunkKind::kZero;
      } else if (options_.incremental && !any_dirty) {
        slot.kind = ChunkKind::kReuseParent;
      } else {
        SP_RETURN_IF_ERROR(StartChunk(slot, begin, length));
      }
    }
    return absl::OkStatus();
  }

  Status StartChunk(Slot& slot, uint64_t begin, uint64_t length) {
    slot.data.resize(length);
    ++data_in_flight_;
    uint64_t piece_limit = std::max<uint64_t>(1, source_.max_read_size());
    for (uint64_t done = 0; done < length; done += piece_limit) {
      uint64_t piece = std::min(piece_limit, length - done);
      SP_ASSIGN_OR_RETURN(ReadTicket ticket,
                          source_.StartRead(begin + done, piece, slot.data.data() + done));
      owner_[ticket] = slot.index;
      ++slot.reads_left;
      stats_.bytes_read += piece;
    }
    return absl::OkStatus();
  }

  Status AwaitReads() {
    SP_ASSIGN_OR_RETURN(std::vector<ReadTicket> done, source_.WaitForReads());
    for (ReadTicket ticket : done) {
      auto it = owner_.find(ticket);
      if (it == owner_.end()) continue;
      Slot& slot = queue_[static_cast<size_t>(it->second - queue_.front().index)];
      if (--slot.reads_left == 0) --data_in_flight_;
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
      SP_RETURN_IF_ERROR(sink_(slot.index, slot.kind, std::move(slot.data)));
      ++stats_.chunks_done;
      if (progress_) progress_(stats_);
    }
    return absl::OkStatus();
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
    }
  }

  BlockSource& source_;
  uint32_t chunk_size_;
  const StreamOptions& options_;
  const ChunkSink& sink_;
  const StreamProgress& progress_;
  ExtentCursor extents_;
  StreamStats stats_;
  std::deque<Slot> queue_;                // decided chunks, in index order
  std::map<ReadTicket, uint64_t> owner_;  // read in flight → chunk index
  uint64_t next_ = 0;                     // next chunk to decide
  int data_in_flight_ = 0;                // chunks with reads outstanding
};

}  // namespace

StatusOr<uint64_t> BytesToRead(BlockSource& source, uint32_t chunk_size,
                               const StreamOptions& options) {
  ExtentCursor extents(source);
  uint64_t total = 0;
  for (uint64_t begin = 0; begin < source.size(); begin += chunk_size) {
    uint64_t end = std::min<uint64_t>(source.size(), begin + chunk_size);
    bool all_zero = false, any_dirty = false;
    SP_RETURN_IF_ERROR(extents.Classify(begin, end, &all_zero, &any_dirty));
    if (!all_zero && (!options.incremental || any_dirty)) total += end - begin;
  }
  return total;
}

StatusOr<StreamStats> StreamVolume(BlockSource& source, uint32_t chunk_size,
                                   const StreamOptions& options, const ChunkSink& sink,
                                   const StreamProgress& progress) {
  if (chunk_size == 0 || options.reads_in_flight <= 0) {
    return absl::InvalidArgumentError("StreamVolume: chunk size and reads in flight must be > 0");
  }
  Streamer streamer(source, chunk_size, options, sink, progress);
  return streamer.Run();
}

}  // namespace sp::block
