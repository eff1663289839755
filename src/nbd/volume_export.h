// nbd: serving one volume of a recovery point read-only over NBD, straight from the repository,
// through nbdkit (no volume is written out first).
//
// VolumeExport is what the nbdkit plugin (plugin.cc → nbdkit-stillpoint-plugin.so) does for each
// NBD request, apart from nbdkit's C API so that tests can drive it in-process:
//   - Read maps an offset range to chunks; zero chunks read as zeros without any I/O; stored chunks
//     are read and decoded (checksum, decryption, zstd) on a small pool of worker threads, so one
//     large request decodes its chunks in parallel and many requests can be in flight;
//   - decoded chunks stay in a small LRU cache; concurrent reads of one chunk share one decode; a
//     missed chunk also starts its next few chunks ahead (sequential readers rarely wait);
//   - every repository read has a deadline: a hung store yields DeadlineExceeded, never a hung
//     NBD request;
//   - a missing or damaged chunk yields DataLoss naming the point, volume and offset, never data;
//   - Extents reports the zero chunks as holes, so clients (qemu-img, nbdcopy) skip them.
// Server (server.h) starts nbdkit with the plugin.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/clock.h"
#include "platform/status.h"
#include "repo/repository.h"

namespace sp::nbd {

struct ExportOptions {
  uint64_t cache_bytes = 64u << 20;  // decoded chunks kept; at least workers + readahead + 1
  int workers = 4;                   // threads reading and decoding chunks
  int readahead = 2;                 // chunks after a missed one that are started ahead
  Millis read_timeout{30'000};       // the longest a request waits for the repository
};

// A run of the volume that is all zeros (a hole) or holds data.
struct ExportExtent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool zero = false;
};

// Counters, for tests and the plugin's debug output.
struct ExportStats {
  uint64_t hits = 0;           // chunk lookups served from the cache (or a decode in progress)
  uint64_t misses = 0;         // chunk lookups that started a decode
  uint64_t readahead = 0;      // decodes started ahead of any request
  uint64_t decoded = 0;        // decodes finished successfully
  uint64_t failed = 0;         // decodes that failed (damaged or missing chunks)
  uint64_t timeouts = 0;       // requests that gave up at the deadline
  uint64_t cached_chunks = 0;  // in the cache now
};

class VolumeExport {
 public:
  // Opens `volume` of `point_id` (id or unique prefix) in `repo` and starts the workers.
  // NotFound for an unknown point or volume; DataLoss when the volume's index is damaged.
  // The export shares ownership of `repo` with its workers.
  static StatusOr<std::unique_ptr<VolumeExport>> Open(std::shared_ptr<repo::Repository> repo,
                                                      absl::string_view point_id,
                                                      absl::string_view volume,
                                                      const ExportOptions& options);
  // Stops the workers. A worker stuck in a hung read past twice the read timeout is left behind
  // (detached): it keeps what it uses alive and ends when its read returns.
  ~VolumeExport();
  VolumeExport(const VolumeExport&) = delete;
  VolumeExport& operator=(const VolumeExport&) = delete;

  // Reads `length` bytes at `offset` into `buffer`. Thread-safe. OutOfRange past the end;
  // DataLoss naming the point, volume and offset for a missing or damaged chunk;
  // DeadlineExceeded when the repository did not answer within the read timeout. On error the
  // buffer's contents are unspecified and must not be served.
  Status Read(uint64_t offset, uint64_t length, char* buffer) const;
  // The zero and data runs covering [offset, offset + length), in order, adjacent, merged, clipped
  // to the range. No I/O (the index says which chunks are zero). REQUIRES: the range is inside
  // the volume.
  std::vector<ExportExtent> Extents(uint64_t offset, uint64_t length) const;

  uint64_t size() const;
  uint32_t chunk_size() const;
  const std::string& point_id() const;  // the full id
  const std::string& volume() const;
  ExportStats stats() const;

  struct State;  // shared with the workers

 private:
  explicit VolumeExport(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace sp::nbd
