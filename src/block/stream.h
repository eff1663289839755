// Streaming a volume chunk by chunk out of a BlockSource, deciding per chunk what must be read.
//
// The volume is cut into chunk_size-aligned chunks (the last one may be shorter). Per chunk:
//   - every byte reads as zero (holes/zeroed extents)            → kZero, nothing read;
//   - incremental, and no dirty extent inside the chunk          → kReuseParent, nothing read;
//   - incremental with patches, and the chunk's dirty sub-chunks may be a patch of the parent's
//     chunk (StreamOptions::patches)                             → kPatch, only they are read;
//   - otherwise the chunk is read (several reads in flight); data that turns out all zero is
//     still reported as kZero.
// Memory is bounded by reads_in_flight × chunk_size (plus the chunk handed to the sink).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "block/block_source.h"
#include "platform/status.h"

namespace sp::block {

enum class ChunkKind { kData, kZero, kReuseParent, kPatch };

// "data", "zero", "reuse", "patch".
const char* ChunkKindName(ChunkKind kind);

// The sub-chunks of a patch: (sub-chunk number, its bytes), in increasing order.
using SubChunks = std::vector<std::pair<uint32_t, std::string>>;

// How an incremental reads chunks with few changes: only their dirty sub-chunks (aligned pieces
// of sub_chunk_size bytes holding a dirty extent) are read, and handed to `sink` instead of the
// stream's sink. A dirty sub-chunk that reads as zeros everywhere (discarded) is not read and
// comes as zeros.
struct PatchOptions {
  uint32_t sub_chunk_size = 0;  // 0: no patches
  // Whether chunk `index` may be a patch with these dirty sub-chunks (increasing numbers).
  std::function<bool(uint64_t index, const std::vector<uint32_t>& dirty)> fits;
  std::function<Status(uint64_t index, SubChunks sub_chunks)> sink;
};

struct StreamOptions {
  // Reuse the parent's chunk where the source's dirty bitmap says nothing changed. Without a
  // dirty bitmap on the source every chunk counts as changed (a full read).
  bool incremental = false;
  int reads_in_flight = 8;  // chunks being read at once (each split into ≤ max_read_size reads)
  PatchOptions patches;     // incremental only
};

// Counters of a stream, handed to the progress callback after every chunk and returned at the end.
struct StreamStats {
  uint64_t volume_size = 0;
  uint64_t chunk_count = 0;
  uint64_t chunks_done = 0;  // chunks handed to the sink so far
  uint64_t data_chunks = 0;
  uint64_t zero_chunks = 0;  // holes and chunks read as all zeros
  uint64_t reused_chunks = 0;
  uint64_t patched_chunks = 0;  // given to the patch sink
  uint64_t bytes_read = 0;      // transferred from the source
  uint64_t bytes_zero = 0;      // in zero chunks (whether read or skipped)
  uint64_t bytes_reused = 0;    // in reused chunks
};

// Receives one chunk: `data` holds its bytes for kData (chunk_size, or less for the last chunk)
// and is empty otherwise (kPatch goes to options.patches.sink). A non-OK status stops the stream
// and is returned by StreamVolume.
using ChunkSink = std::function<Status(uint64_t index, ChunkKind kind, std::string data)>;
using StreamProgress = std::function<void(const StreamStats&)>;

// Streams every chunk of `source` to `sink` (or, for patches, options.patches.sink), exactly once
// each, in increasing index order, on the
// calling thread (the sink may block, e.g. VolumeWriter::PutChunk). `progress` (may be null) is
// called after each chunk. Returns the final counters, or the first error of the source (naming
// the offset) or of the sink. On return no read is left in flight, unless the source broke.
// REQUIRES: chunk_size > 0, options.reads_in_flight > 0.
StatusOr<StreamStats> StreamVolume(BlockSource& source, uint32_t chunk_size,
                                   const StreamOptions& options, const ChunkSink& sink,
                                   const StreamProgress& progress = nullptr);

// How many bytes StreamVolume would read from `source` with these settings (the chunks that are
// neither all holes nor, for an incremental, clean; of patches only their dirty sub-chunks), from
// block status alone: a progress display's honest total. Errors are the source's.
StatusOr<uint64_t> BytesToRead(BlockSource& source, uint32_t chunk_size,
                               const StreamOptions& options);

// True when all `length` bytes at `data` are zero.
bool IsAllZero(const char* data, size_t length);

}  // namespace sp::block
