// The repository: a deduplicated, compressed, verified store of recovery points.
//
// A recovery point holds the volumes of one VM at one point in time. Volumes are cut into
// fixed-size chunks aligned to volume offsets; each chunk is stored once under its id (SHA-256
// of the plaintext, keyed when encrypted), compressed with zstd when that helps; all-zero chunks
// are not stored. Each volume of each point has an index (chunk ids in order), and each point a
// manifest, written last: the manifest is the commit. docs/repository-format.md describes the
// bytes on disk.
//
// Write path (capture):
//   auto writer = repo->BeginRecoveryPoint(request);       // refuses early if over the VM's limit
//   auto volume = (*writer)->AddVolume("vda", size);
//   volume->PutChunk(i, data) / PutZero(i) / ReuseParent(i) / PutPatch(i, sub-chunks) for every
//   chunk position i (a patch: the parent's chunk with a few sub-chunks replaced, stored as a
//   composite index entry — the base and the sub-chunk objects, never a chain)
//   (*writer)->Commit(description) → the manifest written     or   (*writer)->Abort()
// Hashing, compression and storing run on worker threads; memory stays bounded (PutChunk blocks
// while too much is in flight).
//
// Read path (restore, NBD serving): OpenVolume(point, volume) → ReadAt / NewStream.
//
// Concurrency: any number of readers; one writer per VM (a lock file), writers of different VMs
// at once, and CollectGarbage beside them (it never deletes a chunk written or reused after its
// own start or after the start of any writer still running). Several processes may share a
// repository; the locks are advisory file locks that die with their process.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "platform/status.h"
#include "repo/internal/format.h"
#include "repo/manifest.h"
#include "repo/point_description.h"
#include "repo/prune.h"

namespace sp::repo {

namespace internal {
class ChunkCodec;
struct VolumeIndex;
}  // namespace internal

// The repository's format (its config's "version"). 2: manifests of version 2 may be present;
// 3: volume indexes of version 2 (sub-chunk overrides) may be present too. Older repositories
// are read as they are and become version 3 before the first point is written into them
// (docs/repository-format.md, "Versioning").
inline constexpr int kFormatVersion = 3;
inline constexpr int kOldestFormatVersion = 1;
inline constexpr uint32_t kMinChunkSize = 1u << 20;
inline constexpr uint32_t kMaxChunkSize = 16u << 20;
inline constexpr uint32_t kDefaultChunkSize = 4u << 20;

struct InitOptions {
  uint32_t chunk_size = kDefaultChunkSize;  // a power of two in [1 MiB, 16 MiB]
  int compression_level = 1;                // zstd level; 0 = no compression
  bool encrypted = false;                   // aes-256-gcm
  // Encrypted only: file holding the master key (64 hex digits). Created with a new random key
  // (mode 0600) when it does not exist.
  std::string key_file;
  FileSystem* fs = FileSystem::Posix();
  Clock* clock = Clock::Real();  // the repository's creation time
};

// Parses "zstd", "zstd:LEVEL" (1..19) or "none" into a zstd level (0 = none).
StatusOr<int> ParseCompression(absl::string_view text);

struct OpenOptions {
  FileSystem* fs = FileSystem::Posix();
  // Point ids and the times in manifests. (gc judges chunk ages by the file system's own clock,
  // fs->NowMicros(), the one its files' times come from.)
  Clock* clock = Clock::Real();
  std::string key_file;              // required for an encrypted repository
  int worker_threads = 0;            // hashing/compression workers; 0 = chosen from the CPUs
  uint64_t max_bytes_in_flight = 0;  // write-path memory bound; 0 = 64 MiB (≥ workers+2 chunks)
  // gc spares every chunk whose timestamp is within this much of its start (clock granularity).
  int64_t timestamp_slack_micros = 2'000'000;
};

// The repository's config file, as read.
struct RepositoryConfig {
  int version = kFormatVersion;
  std::string id;
  uint32_t chunk_size = kDefaultChunkSize;
  int compression_level = 3;
  bool encrypted = false;
  std::string key_check;  // encrypted only: HMAC of a fixed text under the master key
  int64_t created_micros = 0;

  std::string CompressionText() const;  // "zstd:3" or "none"
  std::string EncryptionText() const;   // "aes-256-gcm" or "none"
};

struct VmIdentity {
  std::string id;    // stable identity (the VM's UUID); points are grouped by it
  std::string name;  // for people; may change
};

struct RecoveryPointRequest {
  VmIdentity vm;
  std::string name;  // defaults to the VM's name
  std::string description;
  std::string parent_id;  // the point ReuseParent refers to; empty for a full capture
  // Upper bound of the stored bytes this point may add (allocated bytes of the selected volumes,
  // or the dirty bytes of an incremental), checked against the limit before any data moves.
  uint64_t estimated_bytes = 0;
  std::optional<uint64_t> space_limit_bytes;  // the VM's limit; none = unlimited
};

// Accepts the chunks of one volume by position. Owned by its RecoveryPointWriter. Call from one
// producer thread at a time. Each position of the volume must be given exactly once (any order).
class VolumeWriter {
 public:
  virtual ~VolumeWriter() = default;
  // Chunk `index` holds `data` (chunk_size bytes; the last chunk of the volume may be shorter).
  // May block while the workers catch up. Returns the first error of the write path so far.
  virtual Status PutChunk(uint64_t index, std::string data) = 0;
  // Chunk `index` is all zeros (a hole). Stores nothing.
  virtual Status PutZero(uint64_t index) = 0;
  // Chunk `index` is the same as in the parent point's volume of the same name.
  // FailedPrecondition when there is no such parent volume or the parent's chunk is gone.
  virtual Status ReuseParent(uint64_t index) = 0;

  // Patches: an incremental that changed a few sub-chunks of a chunk gives only those, and the
  // index records the chunk as the parent's base with the new sub-chunks as overrides (no chain:
  // the parent's overrides are merged in). The sub-chunk size of this volume's patches, or 0
  // when it takes none (no parent volume).
  virtual uint32_t sub_chunk_size() const = 0;
  // Whether chunk `index` may be given as a patch replacing the sub-chunks `subs` (increasing):
  // the parent has the chunk with the same length, and with the parent's own overrides of the
  // chunk at most a quarter of its sub-chunks (at least one, never all) would be overridden.
  // Otherwise give the whole chunk (PutChunk).
  virtual bool PatchFits(uint64_t index, const std::vector<uint32_t>& subs) const = 0;
  // Chunk `index` is the parent's with sub-chunks replaced: `subs` holds (sub-chunk number,
  // its bytes) in increasing order, each sub_chunk_size() bytes (the chunk's last sub-chunk may be
  // shorter). Hashed, compressed and stored like PutChunk; may block likewise.
  // FailedPrecondition unless PatchFits, or when an object of the parent's chunk is gone;
  // InvalidArgument for a sub-chunk of the wrong length.
  virtual Status PutPatch(uint64_t index, std::vector<std::pair<uint32_t, std::string>> subs) = 0;
  virtual const std::string& name() const = 0;
  virtual uint64_t size() const = 0;
  virtual uint64_t chunk_count() const = 0;
};

// Counters of a write in progress or done.
struct WriteStats {
  uint64_t chunks = 0;
  uint64_t zero_chunks = 0;
  uint64_t reused_chunks = 0;   // deduplicated (already stored, or the parent's)
  uint64_t patched_chunks = 0;  // given as patches: the parent's chunk with new sub-chunks
  uint64_t new_chunks = 0;      // new objects stored (chunks and sub-chunks)
  uint64_t bytes_in = 0;        // plaintext bytes given to PutChunk
  uint64_t stored_bytes = 0;    // bytes of new chunk objects
};

class RecoveryPointWriter {
 public:
  virtual ~RecoveryPointWriter() = default;  // aborts when neither committed nor aborted
  // Adds a volume of `size` bytes. InvalidArgument for a duplicate or empty name.
  // The returned pointer stays valid until the writer is destroyed.
  virtual StatusOr<VolumeWriter*> AddVolume(absl::string_view name, uint64_t size) = 0;
  // Waits for the workers, writes the indexes and then the manifest (the commit point) with
  // `description` (consistency, reason, timings, VM configuration...). Returns the manifest it
  // wrote. On error, nothing refers to the point's data and the writer is aborted.
  // FailedPrecondition when a chunk position of some volume was never given; InvalidArgument
  // when `description` would not read back (e.g. vcpus 0), so that no unreadable point is made.
  virtual StatusOr<Manifest> Commit(const PointDescription& description) = 0;
  // Waits until every chunk given so far is stored durably under its name (one flush of the file
  // system for the batch); returns the first error of the write path. Optional (Commit does it
  // too).
  virtual Status Flush() = 0;
  // Drops the point: stops the workers and removes its files. Chunks it stored stay until gc.
  virtual void Abort() = 0;
  virtual const std::string& id() const = 0;
  virtual WriteStats stats() const = 0;
};

// Random access to one volume of one recovery point. Thread-safe.
class VolumeReader {
 public:
  virtual ~VolumeReader() = default;
  // Reads `length` bytes at `offset` into `buffer`. OutOfRange past the end of the volume;
  // DataLoss naming the point, volume and offset when a chunk is missing or corrupt.
  virtual Status ReadAt(uint64_t offset, uint64_t length, char* buffer) const = 0;
  // The plaintext of chunk `index` (zeros for a zero chunk; a composite's base with its
  // sub-chunk overrides applied).
  virtual StatusOr<std::string> ReadChunk(uint64_t index) const = 0;
  virtual uint64_t size() const = 0;
  virtual uint32_t chunk_size() const = 0;
  virtual uint64_t chunk_count() const = 0;
  // True when chunk `index` is all zeros (no I/O needed to read it); never for a composite.
  virtual bool IsZeroChunk(uint64_t index) const = 0;
};

// Sequential reading of a whole volume with several chunks decoded ahead on worker threads.
class VolumeStream {
 public:
  virtual ~VolumeStream() = default;
  // The next chunk's bytes in *data; false at the end. Errors as VolumeReader::ReadAt.
  // With `is_zero` given, a zero chunk sets *is_zero and leaves *data empty (no bytes are made:
  // the caller writes a hole); without it zero chunks come as zeros.
  virtual StatusOr<bool> Next(std::string* data, bool* is_zero = nullptr) = 0;
};

struct VerifyProblem {
  std::string point_id;
  std::string volume;
  uint64_t offset = 0;
  std::string chunk_id;
  std::string what;  // "missing", "checksum mismatch", ...
};

struct VerifyReport {
  uint64_t points = 0;
  uint64_t volumes = 0;
  uint64_t chunks_checked = 0;
  uint64_t bytes_checked = 0;               // plaintext
  std::vector<std::string> damaged_points;  // manifest or index unreadable: "id: why"
  std::vector<VerifyProblem> problems;
  bool ok() const { return damaged_points.empty() && problems.empty(); }
};

struct GcReport {
  uint64_t chunks_in_use = 0;
  uint64_t chunks_deleted = 0;
  uint64_t bytes_freed = 0;
  uint64_t chunks_spared = 0;  // unreferenced but too new to delete (a backup may use them)
  uint64_t incomplete_points_removed = 0;
  uint64_t temp_files_removed = 0;
};

struct RepositoryStats {
  uint64_t points = 0;
  uint64_t logical_bytes = 0;  // sum of the sizes of all volumes of all points
  uint64_t stored_bytes = 0;   // chunk objects on disk
  uint64_t chunk_count = 0;
  double DedupRatio() const {
    return stored_bytes == 0
               ? 0.0
               : static_cast<double>(logical_bytes) / static_cast<double>(stored_bytes);
  }
};

// What counts against a VM's space limit: the on-disk size of every distinct chunk that any of
// its recovery points references, each counted once for the VM even when several of its points
// share it, and counted in full even when another VM shares it too (so another VM's pruning
// never pushes this one over its limit), plus its indexes and manifests.
struct VmUsage {
  uint64_t points = 0;
  uint64_t stored_bytes = 0;
};

class Repository {
 public:
  // Creates a new repository in `path` (created if missing; must be empty if it exists).
  // AlreadyExists when a repository is already there.
  static Status Init(const std::string& path, const InitOptions& options);
  // Creates a repository in `path` unless one appears there first, so that processes racing to
  // create the same repository all end up using one: builds it in a private directory beside
  // `path` and renames that into place (through options.fs). True when this call made it; false
  // when another process was first (its repository is kept). On error nothing is left at `path`
  // or beside it. Errors: those of Init, and of the rename (e.g. `path` is a non-empty directory
  // that is not a repository).
  static StatusOr<bool> InitAtomically(const std::string& path, const InitOptions& options);
  // Opens the repository in `path`. FailedPrecondition for an unknown format version or an
  // encrypted repository without (or with the wrong) key; NotFound when there is none.
  static StatusOr<std::unique_ptr<Repository>> Open(const std::string& path,
                                                    const OpenOptions& options);
  ~Repository();

  const RepositoryConfig& config() const { return config_; }
  const std::string& path() const { return path_; }
  FileSystem* fs() const { return options_.fs; }

  // Starts a recovery point of `request.vm`. FailedPrecondition when another backup of the same
  // VM is running; ResourceExhausted when the limit would be exceeded (the message says how to
  // raise it or prune); NotFound when the parent does not exist.
  StatusOr<std::unique_ptr<RecoveryPointWriter>> BeginRecoveryPoint(
      const RecoveryPointRequest& request);
  // ResourceExhausted (with advice) when `estimated_bytes` more would push `vm` past `limit`.
  Status CheckSpace(const VmIdentity& vm, uint64_t estimated_bytes, std::optional<uint64_t> limit);

  // Every complete recovery point, oldest first. Points whose manifest is damaged are skipped
  // (verify reports them).
  StatusOr<std::vector<Manifest>> ListRecoveryPoints();
  // By id or unique id prefix. NotFound / InvalidArgument (ambiguous prefix).
  StatusOr<Manifest> GetRecoveryPoint(absl::string_view id);
  StatusOr<std::unique_ptr<VolumeReader>> OpenVolume(absl::string_view point_id,
                                                     absl::string_view volume);
  StatusOr<std::unique_ptr<VolumeStream>> OpenStream(absl::string_view point_id,
                                                     absl::string_view volume);
  // Removes a recovery point (its manifest first). Its chunks are freed by the next gc.
  Status DeleteRecoveryPoint(absl::string_view id);

  StatusOr<VmUsage> Usage(absl::string_view vm_id);
  StatusOr<RepositoryStats> Stats();
  // Re-reads and re-hashes every chunk of `point_id` (all points when empty).
  StatusOr<VerifyReport> Verify(absl::string_view point_id);
  StatusOr<GcReport> CollectGarbage();
  // Applies `policy` to the points of the VM whose id or name is `vm`; deletes the points it
  // does not keep unless `dry_run`. NotFound when the VM has no points.
  StatusOr<std::vector<PruneDecision>> Prune(absl::string_view vm, const PrunePolicy& policy,
                                             bool dry_run);

  // Internals shared by the writer, the readers and maintenance.
  std::string ChunkPath(const Digest& id) const;
  std::string PointDir(absl::string_view id) const;
  StatusOr<internal::VolumeIndex> LoadIndex(const Manifest& manifest, const ManifestVolume& volume);
  const internal::ChunkCodec& codec() const { return *codec_; }
  const OpenOptions& options() const { return options_; }

 private:
  Repository(std::string path, OpenOptions options, RepositoryConfig config,
             std::unique_ptr<internal::ChunkCodec> codec);
  StatusOr<std::string> ResolveId(absl::string_view id_or_prefix);
  // Rewrites the config of an older repository as kFormatVersion, so that an older stillpoint
  // refuses it once it holds objects it cannot read. Called before a point is written.
  Status UpgradeFormat();

  std::string path_;
  OpenOptions options_;
  RepositoryConfig config_;
  std::unique_ptr<internal::ChunkCodec> codec_;
  std::mutex upgrade_mutex_;  // guards config_.version while UpgradeFormat runs
};

}  // namespace sp::repo
