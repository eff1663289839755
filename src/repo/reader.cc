// The read path: random access to a volume of a recovery point, and a read-ahead stream.
#include <cstring>
#include <deque>
#include <future>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "platform/check.h"
#include "repo/internal/chunk_codec.h"
#include "repo/repository.h"

namespace sp::repo {
namespace {

using internal::VolumeIndex;

class VolumeReaderImpl final : public VolumeReader {
 public:
  VolumeReaderImpl(Repository* repo, std::string point_id, std::string volume, VolumeIndex index)
      : repo_(repo),
        point_id_(std::move(point_id)),
        volume_(std::move(volume)),
        index_(std::move(index)) {
    // DecodeIndex refuses an index whose chunk count does not match its volume size; every
    // offset computation below relies on it.
    SP_CHECK_EQ(index_.chunks.size(), internal::ChunkCount(index_.volume_size, index_.chunk_size));
  }

  Status ReadAt(uint64_t offset, uint64_t length, char* buffer) const override;
  StatusOr<std::string> ReadChunk(uint64_t index) const override;
  uint64_t size() const override { return index_.volume_size; }
  uint32_t chunk_size() const override { return index_.chunk_size; }
  uint64_t chunk_count() const override { return index_.chunks.size(); }
  bool IsZeroChunk(uint64_t index) const override { return index_.IsZero(index); }

 private:
  uint64_t ChunkLength(uint64_t index) const { return index_.ChunkLength(index); }
  Status Damaged(uint64_t offset, const Digest& id, absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(
        "recovery point ", point_id_, ", volume '", volume_, "', offset ", offset, " (chunk ",
        DigestHex(id), "): ", what, "; run `stillpoint repo verify ", point_id_, "`"));
  }
  // The plaintext of the object `id`, which must be `length` bytes; errors name `offset`.
  StatusOr<std::string> ReadObject(const Digest& id, uint64_t length, uint64_t offset) const;
  StatusOr<std::shared_ptr<const std::string>> CachedChunk(uint64_t index) const;

  Repository* const repo_;
  const std::string point_id_;
  const std::string volume_;
  const VolumeIndex index_;
  mutable absl::Mutex cache_mutex_;
  mutable uint64_t cached_index_ ABSL_GUARDED_BY(cache_mutex_) = UINT64_MAX;
  mutable std::shared_ptr<const std::string> cached_ ABSL_GUARDED_BY(cache_mutex_);
};

StatusOr<std::string> VolumeReaderImpl::ReadObject(const Digest& id, uint64_t length,
                                                   uint64_t offset) const {
  auto file = repo_->fs()->NewRandomAccessFile(repo_->ChunkPath(id));
  if (absl::IsNotFound(file.status())) return Damaged(offset, id, "chunk is missing");
  if (!file.ok()) return Damaged(offset, id, file.status().message());
  auto plain = repo_->codec().ReadAndDecode(**file, id);
  if (!plain.ok()) return Damaged(offset, id, plain.status().message());
  if (plain->size() != length) return Damaged(offset, id, "chunk has the wrong length");
  return plain;
}

// A composite is its base (or zeros) with each override copied over its sub-chunk.
StatusOr<std::string> VolumeReaderImpl::ReadChunk(uint64_t index) const {
  if (index >= index_.chunks.size()) return absl::OutOfRangeError("chunk index past the end");
  const Digest& base = index_.chunks[index];
  uint64_t offset = index * index_.chunk_size;
  std::string plain;
  if (base == kZeroDigest) {
    plain.assign(ChunkLength(index), '\0');
  } else {
    SP_ASSIGN_OR_RETURN(plain, ReadObject(base, ChunkLength(index), offset));
  }
  auto [first, last] = index_.OverridesOf(index);
  for (size_t i = first; i < last; ++i) {
    const internal::SubChunkOverride& entry = index_.overrides[i];
    uint64_t within = static_cast<uint64_t>(entry.sub) * index_.sub_chunk_size;
    uint64_t length = index_.SubChunkLength(index, entry.sub);
    // DecodeIndex refuses an override past its chunk's end.
    SP_CHECK_LE(within + length, plain.size());
    if (entry.id == kZeroDigest) {
      std::memset(plain.data() + within, 0, length);
      continue;
    }
    SP_ASSIGN_OR_RETURN(std::string sub, ReadObject(entry.id, length, offset + within));
    std::memcpy(plain.data() + within, sub.data(), length);
  }
  return plain;
}

StatusOr<std::shared_ptr<const std::string>> VolumeReaderImpl::CachedChunk(uint64_t index) const {
  {
    absl::MutexLock lock(&cache_mutex_);
    if (cached_index_ == index) return cached_;
  }
  SP_ASSIGN_OR_RETURN(std::string plain, ReadChunk(index));
  auto chunk = std::make_shared<const std::string>(std::move(plain));
  absl::MutexLock lock(&cache_mutex_);
  cached_index_ = index;
  cached_ = chunk;
  return chunk;
}

Status VolumeReaderImpl::ReadAt(uint64_t offset, uint64_t length, char* buffer) const {
  if (offset > index_.volume_size || length > index_.volume_size - offset) {
    return absl::OutOfRangeError(absl::StrCat("read of ", length, " bytes at ", offset,
                                              " is past the end of volume '", volume_, "' (",
                                              index_.volume_size, " bytes)"));
  }
  while (length > 0) {
    uint64_t index = offset / index_.chunk_size;
    uint64_t within = offset % index_.chunk_size;
    SP_CHECK_LT(index, index_.chunks.size());  // the range was checked against the size
    uint64_t count = std::min(length, ChunkLength(index) - within);
    if (index_.IsZero(index)) {
      std::memset(buffer, 0, count);
    } else {
      SP_ASSIGN_OR_RETURN(auto chunk, CachedChunk(index));
      std::memcpy(buffer, chunk->data() + within, count);
    }
    buffer += count;
    offset += count;
    length -= count;
  }
  return absl::OkStatus();
}

// Keeps up to kWindow stored chunks being read and decoded ahead of the consumer; zero chunks
// need no work and do not count.
class VolumeStreamImpl final : public VolumeStream {
 public:
  explicit VolumeStreamImpl(std::unique_ptr<VolumeReader> reader) : reader_(std::move(reader)) {}
  ~VolumeStreamImpl() override {
    for (auto& pending : window_) {
      if (pending.chunk.valid()) pending.chunk.wait();
    }
  }

  StatusOr<bool> Next(std::string* data, bool* is_zero) override {
    Fill();
    if (window_.empty()) return false;
    Pending next = std::move(window_.front());
    window_.pop_front();
    if (is_zero != nullptr) *is_zero = next.zero;
    if (next.zero) {
      if (is_zero != nullptr)
        data->clear();
      else
        data->assign(ChunkLength(next.index), '\0');
      return true;
    }
    --reading_;
    StatusOr<std::string> chunk = next.chunk.get();
    if (!chunk.ok()) return chunk.status();
    *data = *std::move(chunk);
    return true;
  }

 private:
  static constexpr size_t kWindow = 4;
  static constexpr size_t kMaxQueued = 4096;

  struct Pending {
    uint64_t index;
    bool zero;
    std::future<StatusOr<std::string>> chunk;  // not valid for a zero chunk
  };

  uint64_t ChunkLength(uint64_t index) const {
    return std::min<uint64_t>(reader_->chunk_size(),
                              reader_->size() - index * reader_->chunk_size());
  }

  void Fill() {
    while (next_to_start_ < reader_->chunk_count() && reading_ < kWindow &&
           window_.size() < kMaxQueued) {
      uint64_t index = next_to_start_++;
      if (reader_->IsZeroChunk(index)) {
        window_.push_back(Pending{index, true, {}});
        continue;
      }
      const VolumeReader* reader = reader_.get();
      window_.push_back(Pending{index, false, std::async(std::launch::async, [reader, index] {
                                  return reader->ReadChunk(index);
                                })});
      ++reading_;
    }
  }

  std::unique_ptr<VolumeReader> reader_;
  uint64_t next_to_start_ = 0;
  size_t reading_ = 0;  // entries of window_ with a chunk being read
  std::deque<Pending> window_;
};

}  // namespace

StatusOr<std::unique_ptr<VolumeReader>> Repository::OpenVolume(absl::string_view point_id,
                                                               absl::string_view volume) {
  SP_ASSIGN_OR_RETURN(Manifest manifest, GetRecoveryPoint(point_id));
  const ManifestVolume* entry = manifest.FindVolume(volume);
  if (entry == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("recovery point ", manifest.id, " has no volume '", volume, "'"));
  }
  SP_ASSIGN_OR_RETURN(VolumeIndex index, LoadIndex(manifest, *entry));
  return std::unique_ptr<VolumeReader>(
      new VolumeReaderImpl(this, manifest.id, entry->name, std::move(index)));
}

StatusOr<std::unique_ptr<VolumeStream>> Repository::OpenStream(absl::string_view point_id,
                                                               absl::string_view volume) {
  SP_ASSIGN_OR_RETURN(auto reader, OpenVolume(point_id, volume));
  return std::unique_ptr<VolumeStream>(new VolumeStreamImpl(std::move(reader)));
}

}  // namespace sp::repo
