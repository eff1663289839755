// The write path: RecoveryPointWriter and VolumeWriter with a pool of worker threads that
// detect zero chunks, hash, deduplicate, compress and store, under a bound on bytes in flight.
#include <unistd.h>

#include <algorithm>
#include <bitset>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "platform/check.h"
#include "platform/clock.h"
#include "repo/internal/chunk_codec.h"
#include "repo/internal/layout.h"
#include "repo/repository.h"

namespace sp::repo {
namespace {

using internal::SubChunkOverride;
using internal::VolumeIndex;

class WriterImpl;

class VolumeWriterImpl final : public VolumeWriter {
 public:
  VolumeWriterImpl(WriterImpl* writer, std::string name, uint64_t size, uint32_t chunk_size,
                   std::optional<VolumeIndex> parent)
      : writer_(writer),
        name_(std::move(name)),
        size_(size),
        chunk_size_(chunk_size),
        count_(internal::ChunkCount(size, chunk_size)),
        ids_(count_),
        given_(count_, 0),
        parent_(std::move(parent)),
        sub_chunk_size_(parent_ && parent_->version >= 2 ? parent_->sub_chunk_size
                                                         : internal::kSubChunkSize) {}

  Status PutChunk(uint64_t index, std::string data) override;
  Status PutZero(uint64_t index) override;
  Status ReuseParent(uint64_t index) override;
  uint32_t sub_chunk_size() const override { return parent_ ? sub_chunk_size_ : 0; }
  bool PatchFits(uint64_t index, const std::vector<uint32_t>& subs) const override;
  Status PutPatch(uint64_t index, std::vector<std::pair<uint32_t, std::string>> subs) override;
  const std::string& name() const override { return name_; }
  uint64_t size() const override { return size_; }
  uint64_t chunk_count() const override { return count_; }

  uint64_t ChunkLength(uint64_t index) const {
    return std::min<uint64_t>(chunk_size_, size_ - index * chunk_size_);
  }
  // Called by workers, each index by exactly one of them.
  void SetId(uint64_t index, const Digest& id) {
    SP_CHECK_LT(index, count_);  // Claim admitted only positions of the volume
    ids_[index] = id;
  }
  // The first position never given, or count_ when all were.
  uint64_t FirstMissing() const {
    return static_cast<uint64_t>(std::find(given_.begin(), given_.end(), 0) - given_.begin());
  }
  VolumeIndex Index() const;
  // Called by a worker for a patch it stored: chunk `index` is `base` with `overrides` (sorted).
  void SetComposite(uint64_t index, const Digest& base, std::vector<SubChunkOverride> overrides);
  // The parent's index. REQUIRES: the volume has a parent (sub_chunk_size() != 0).
  const VolumeIndex& parent() const { return *parent_; }
  // Refreshes the timestamp of object `id` of the parent's chunk `index` (keeps gc away);
  // FailedPrecondition when it is gone.
  Status TouchParentObject(uint64_t index, const Digest& id);

  std::atomic<uint64_t> zero_chunks{0};
  std::atomic<uint64_t> patched_chunks{0};
  std::atomic<uint64_t> new_chunks{0};
  std::atomic<uint64_t> new_stored_bytes{0};

 private:
  Status Claim(uint64_t index);

  WriterImpl* const writer_;
  const std::string name_;
  const uint64_t size_;
  const uint32_t chunk_size_;
  const uint64_t count_;
  std::vector<Digest> ids_;     // each element written by one worker or the producer
  std::vector<uint8_t> given_;  // producer thread only
  const std::optional<VolumeIndex> parent_;
  const uint32_t sub_chunk_size_;  // the parent's (its reused overrides keep their meaning)
  mutable absl::Mutex overrides_mutex_;
  // The overrides of composite positions (reused from the parent or made by patches).
  std::map<uint64_t, std::vector<SubChunkOverride>> overrides_ ABSL_GUARDED_BY(overrides_mutex_);
};

struct Job {
  VolumeWriterImpl* volume = nullptr;
  uint64_t index = 0;
  std::string data;
  std::vector<std::pair<uint32_t, std::string>> patch;  // a patch (PutPatch) when not empty
};

uint64_t JobBytes(const Job& job) {
  uint64_t bytes = job.data.size();
  for (const auto& sub : job.patch) bytes += sub.second.size();
  return bytes;
}

class WriterImpl final : public RecoveryPointWriter {
 public:
  WriterImpl(Repository* repo, RecoveryPointRequest request, std::string id,
             std::unique_ptr<FileLock> vm_lock, std::unique_ptr<FileLock> pending_lock,
             std::optional<Manifest> parent, std::optional<uint64_t> budget);
  ~WriterImpl() override { Abort(); }

  StatusOr<VolumeWriter*> AddVolume(absl::string_view name, uint64_t size) override;
  StatusOr<Manifest> Commit(const PointDescription& description) override;
  void Abort() override;
  Status Flush() override {
    SP_RETURN_IF_ERROR(Drain());
    return PublishBatch();
  }
  const std::string& id() const override { return id_; }
  WriteStats stats() const override;

  // The path for the producer: queue a chunk for the workers (blocks while memory is short).
  Status Submit(Job job);
  // Refreshes the timestamp of an existing chunk (keeps gc away) and notes its directory.
  // NotFound when the chunk is gone.
  Status TouchChunk(const Digest& id);
  Status first_error();
  Repository* repo() { return repo_; }
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> reused_chunks{0};

 private:
  void WorkerLoop();
  Status Process(const Job& job);
  Status ProcessPatch(const Job& job);
  Status StoreChunk(VolumeWriterImpl* volume, const Digest& id, absl::string_view data);
  // Writes a new chunk object under a temporary name, unsynced, for the next batch.
  Status WriteUnsynced(const Digest& id, absl::string_view object);
  // Makes the batch of chunks written so far durable with one flush of the file system, then
  // renames them into place (see "Durability" in docs/repository-format.md).
  Status PublishBatch();
  Status Drain();
  void StopWorkers();
  void NoteDirty(const Digest& id);
  StatusOr<Manifest> WriteIndexesAndManifest(const PointDescription& description);
  void RemoveFiles();

  Repository* const repo_;
  const RecoveryPointRequest request_;
  const std::string id_;
  const int64_t created_micros_;
  std::unique_ptr<FileLock> vm_lock_;
  std::unique_ptr<FileLock> pending_lock_;
  const std::optional<Manifest> parent_;
  const std::optional<uint64_t> budget_;  // stored bytes this point may add
  uint64_t max_bytes_in_flight_;
  std::vector<std::unique_ptr<VolumeWriterImpl>> volumes_;
  bool finished_ = false;

  // Waits are absl::Condition on the guarded state (absl::Mutex wakes waiters when it changes).
  absl::Mutex mutex_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mutex_);
  uint64_t bytes_in_flight_ ABSL_GUARDED_BY(mutex_) = 0;  // queued + being processed
  int active_jobs_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  Status error_ ABSL_GUARDED_BY(mutex_);  // the first error
  std::bitset<256> dirty_dirs_ ABSL_GUARDED_BY(mutex_);
  // New chunks written but not yet published: their temporary and final paths. Their ids stay in
  // claimed_ for the whole write, so that a chunk met twice is stored once.
  struct Unpublished {
    std::string temp;
    std::string path;
    uint8_t fan;  // the chunk directory, id[0]
  };
  std::vector<Unpublished> unpublished_ ABSL_GUARDED_BY(mutex_);
  uint64_t unpublished_bytes_ ABSL_GUARDED_BY(mutex_) = 0;
  std::set<Digest> claimed_ ABSL_GUARDED_BY(mutex_);
  absl::Mutex publish_mutex_;  // one batch is published at a time
  std::atomic<uint64_t> stored_bytes_{0};
  std::vector<std::thread> workers_;
};

// New chunks are published (flushed with one syncfs, then renamed into place) in batches of
// about this many stored bytes, and at the commit.
constexpr uint64_t kBatchBytes = 256ull << 20;

std::string PendingPath(Repository* repo, absl::string_view id) {
  return absl::StrCat(repo->path(), "/", internal::kPendingDir, "/", id);
}

// --- VolumeWriterImpl ------------------------------------------------------------------------

Status VolumeWriterImpl::Claim(uint64_t index) {
  SP_RETURN_IF_ERROR(writer_->first_error());
  if (index >= count_) {
    return absl::OutOfRangeError(absl::StrCat("volume '", name_, "' has ", count_,
                                              " chunks; position ", index, " is past its end"));
  }
  if (given_[index]) {
    return absl::InvalidArgumentError(
        absl::StrCat("volume '", name_, "': chunk ", index, " was given twice"));
  }
  given_[index] = 1;
  return absl::OkStatus();
}

Status VolumeWriterImpl::PutChunk(uint64_t index, std::string data) {
  if (index < count_ && data.size() != ChunkLength(index)) {
    return absl::InvalidArgumentError(absl::StrCat("volume '", name_, "': chunk ", index, " is ",
                                                   data.size(), " bytes, expected ",
                                                   ChunkLength(index)));
  }
  SP_RETURN_IF_ERROR(Claim(index));
  writer_->bytes_in += data.size();
  return writer_->Submit(Job{this, index, std::move(data), {}});
}

Status VolumeWriterImpl::PutZero(uint64_t index) {
  SP_RETURN_IF_ERROR(Claim(index));
  ids_[index] = kZeroDigest;
  ++zero_chunks;
  return absl::OkStatus();
}

Status VolumeWriterImpl::ReuseParent(uint64_t index) {
  if (!parent_) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume '", name_, "' has no parent volume to reuse chunks from"));
  }
  if (index < count_ &&
      (index >= parent_->chunks.size() ||
       std::min<uint64_t>(chunk_size_, parent_->volume_size - index * chunk_size_) !=
           ChunkLength(index))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "volume '", name_, "': chunk ", index, " does not exist with the same size in the parent"));
  }
  SP_RETURN_IF_ERROR(Claim(index));
  const Digest& id = parent_->chunks[index];
  if (parent_->IsZero(index)) {
    ++zero_chunks;
  } else {
    if (id != kZeroDigest) SP_RETURN_IF_ERROR(TouchParentObject(index, id));
    auto [first, last] = parent_->OverridesOf(index);
    if (first != last) {
      std::vector<SubChunkOverride> overrides(
          parent_->overrides.begin() + static_cast<std::ptrdiff_t>(first),
          parent_->overrides.begin() + static_cast<std::ptrdiff_t>(last));
      for (const SubChunkOverride& entry : overrides) {
        if (entry.id != kZeroDigest) SP_RETURN_IF_ERROR(TouchParentObject(index, entry.id));
      }
      absl::MutexLock lock(&overrides_mutex_);
      overrides_[index] = std::move(overrides);
    }
    ++writer_->reused_chunks;
  }
  ids_[index] = id;
  return absl::OkStatus();
}

Status VolumeWriterImpl::TouchParentObject(uint64_t index, const Digest& id) {
  Status touched = writer_->TouchChunk(id);
  if (absl::IsNotFound(touched)) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume '", name_, "': chunk ", index,
                     " of the parent point is no longer stored; "
                     "take a full capture instead of an incremental"));
  }
  return touched;
}

// A quarter of a chunk's sub-chunks: past that a patch reads little less than the chunk, and a
// restore would read the base and many small objects.
bool VolumeWriterImpl::PatchFits(uint64_t index, const std::vector<uint32_t>& subs) const {
  if (!parent_ || index >= count_ || subs.empty() || index >= parent_->chunks.size() ||
      parent_->ChunkLength(index) != ChunkLength(index)) {
    return false;
  }
  VolumeIndex shape{chunk_size_, size_, {}, internal::kIndexVersion, sub_chunk_size_, {}};
  uint32_t count = shape.SubChunkCount(index);
  if (!std::is_sorted(subs.begin(), subs.end()) ||
      std::adjacent_find(subs.begin(), subs.end()) != subs.end() || subs.back() >= count) {
    return false;
  }
  auto [first, last] = parent_->OverridesOf(index);
  size_t merged = subs.size();
  for (size_t i = first; i < last; ++i) {
    if (!std::binary_search(subs.begin(), subs.end(), parent_->overrides[i].sub)) ++merged;
  }
  return merged < count && merged <= std::max<size_t>(1, count / 4);
}

Status VolumeWriterImpl::PutPatch(uint64_t index,
                                  std::vector<std::pair<uint32_t, std::string>> subs) {
  std::vector<uint32_t> numbers;
  numbers.reserve(subs.size());
  for (const auto& sub : subs) numbers.push_back(sub.first);
  if (!PatchFits(index, numbers)) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume '", name_, "': chunk ", index,
                     " cannot be a patch of the parent's; give it whole"));
  }
  VolumeIndex shape{chunk_size_, size_, {}, internal::kIndexVersion, sub_chunk_size_, {}};
  for (const auto& sub : subs) {
    if (sub.second.size() != shape.SubChunkLength(index, sub.first)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "volume '", name_, "': sub-chunk ", sub.first, " of chunk ", index, " is ",
          sub.second.size(), " bytes, expected ", shape.SubChunkLength(index, sub.first)));
    }
  }
  SP_RETURN_IF_ERROR(Claim(index));
  Job job{this, index, std::string(), std::move(subs)};
  writer_->bytes_in += JobBytes(job);
  return writer_->Submit(std::move(job));
}

void VolumeWriterImpl::SetComposite(uint64_t index, const Digest& base,
                                    std::vector<SubChunkOverride> overrides) {
  SP_CHECK_LT(index, count_);
  ids_[index] = base;
  absl::MutexLock lock(&overrides_mutex_);
  overrides_[index] = std::move(overrides);
}

VolumeIndex VolumeWriterImpl::Index() const {
  VolumeIndex index{chunk_size_, size_, ids_, internal::kIndexVersion, sub_chunk_size_, {}};
  absl::MutexLock lock(&overrides_mutex_);
  for (const auto& entry : overrides_) {
    index.overrides.insert(index.overrides.end(), entry.second.begin(), entry.second.end());
  }
  return index;
}

// --- WriterImpl: lifecycle --------------------------------------------------------------------

WriterImpl::WriterImpl(Repository* repo, RecoveryPointRequest request, std::string id,
                       std::unique_ptr<FileLock> vm_lock, std::unique_ptr<FileLock> pending_lock,
                       std::optional<Manifest> parent, std::optional<uint64_t> budget)
    : repo_(repo),
      request_(std::move(request)),
      id_(std::move(id)),
      created_micros_(repo->options().clock->UnixMicros()),
      vm_lock_(std::move(vm_lock)),
      pending_lock_(std::move(pending_lock)),
      parent_(std::move(parent)),
      budget_(budget) {
  int workers = repo->options().worker_threads;
  if (workers <= 0) {
    workers = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 2u, 8u));
  }
  uint64_t chunk = repo->config().chunk_size;
  max_bytes_in_flight_ = repo->options().max_bytes_in_flight;
  if (max_bytes_in_flight_ == 0) max_bytes_in_flight_ = 64ull << 20;
  max_bytes_in_flight_ =
      std::max<uint64_t>(max_bytes_in_flight_, chunk * (static_cast<uint64_t>(workers) + 2));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

StatusOr<VolumeWriter*> WriterImpl::AddVolume(absl::string_view name, uint64_t size) {
  if (finished_) return absl::FailedPreconditionError("recovery point already committed/aborted");
  if (name.empty()) return absl::InvalidArgumentError("a volume needs a name");
  for (const auto& volume : volumes_) {
    if (volume->name() == name) {
      return absl::InvalidArgumentError(absl::StrCat("volume '", name, "' was added twice"));
    }
  }
  std::optional<VolumeIndex> parent_index;
  if (parent_) {
    if (const ManifestVolume* parent_volume = parent_->FindVolume(name)) {
      SP_ASSIGN_OR_RETURN(parent_index, repo_->LoadIndex(*parent_, *parent_volume));
    }
  }
  volumes_.push_back(std::make_unique<VolumeWriterImpl>(
      this, std::string(name), size, repo_->config().chunk_size, std::move(parent_index)));
  return volumes_.back().get();
}

void WriterImpl::StopWorkers() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    if (error_.ok()) error_ = absl::CancelledError("recovery point was aborted");
  }
  for (auto& worker : workers_) worker.join();
  workers_.clear();
}

void WriterImpl::RemoveFiles() {
  FileSystem* fs = repo_->fs();
  std::vector<Unpublished> unpublished;
  {
    absl::MutexLock lock(&mutex_);
    unpublished.swap(unpublished_);
  }
  for (const Unpublished& chunk : unpublished) fs->DeleteFile(chunk.temp).IgnoreError();
  std::string dir = repo_->PointDir(id_);
  if (auto names = fs->ListDir(dir); names.ok()) {
    for (const auto& name : *names) fs->DeleteFile(JoinPath(dir, name)).IgnoreError();
  }
  fs->DeleteDir(dir).IgnoreError();
  fs->DeleteFile(PendingPath(repo_, id_)).IgnoreError();
}

void WriterImpl::Abort() {
  if (finished_) return;
  finished_ = true;
  StopWorkers();
  RemoveFiles();
  pending_lock_.reset();
  vm_lock_.reset();
}

WriteStats WriterImpl::stats() const {
  WriteStats stats;
  for (const auto& volume : volumes_) {
    stats.chunks += volume->chunk_count();
    stats.zero_chunks += volume->zero_chunks;
    stats.patched_chunks += volume->patched_chunks;
    stats.new_chunks += volume->new_chunks;
  }
  stats.reused_chunks = reused_chunks;
  stats.bytes_in = bytes_in;
  stats.stored_bytes = stored_bytes_;
  return stats;
}

// --- WriterImpl: the worker pool --------------------------------------------------------------

Status WriterImpl::first_error() {
  absl::MutexLock lock(&mutex_);
  return error_;
}

Status WriterImpl::Submit(Job job) {
  uint64_t size = JobBytes(job);
  absl::MutexLock lock(&mutex_);
  auto admitted = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return !error_.ok() || bytes_in_flight_ == 0 || bytes_in_flight_ + size <= max_bytes_in_flight_;
  };
  mutex_.Await(absl::Condition(&admitted));
  if (!error_.ok()) return error_;
  bytes_in_flight_ += size;
  queue_.push_back(std::move(job));
  return absl::OkStatus();
}

Status WriterImpl::Drain() {
  absl::MutexLock lock(&mutex_);
  auto drained = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return !error_.ok() || (queue_.empty() && active_jobs_ == 0);
  };
  mutex_.Await(absl::Condition(&drained));
  return error_;
}

void WriterImpl::WorkerLoop() {
  auto work_ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    return stopping_ || !queue_.empty();
  };
  while (true) {
    Job job;
    bool skip = false;
    {
      absl::MutexLock lock(&mutex_);
      mutex_.Await(absl::Condition(&work_ready));
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      ++active_jobs_;
      skip = !error_.ok();
    }
    uint64_t size = JobBytes(job);
    Status status = skip ? absl::OkStatus() : Process(job);
    job.data = std::string();  // release the memory before admitting more
    job.patch.clear();
    absl::MutexLock lock(&mutex_);
    --active_jobs_;
    bytes_in_flight_ -= size;
    if (!status.ok() && error_.ok()) error_ = status;
  }
}

Status WriterImpl::Process(const Job& job) {
  if (!job.patch.empty()) return ProcessPatch(job);
  if (IsAllZero(job.data)) {
    job.volume->SetId(job.index, kZeroDigest);
    ++job.volume->zero_chunks;
    return absl::OkStatus();
  }
  Digest id = repo_->codec().Id(job.data);
  SP_RETURN_IF_ERROR(StoreChunk(job.volume, id, job.data));
  job.volume->SetId(job.index, id);
  return absl::OkStatus();
}

// Stores the new sub-chunks of a patch and merges them into the parent's entry for the chunk:
// the parent's base, the parent's overrides the patch does not replace, the patch's. The objects
// kept from the parent are touched, as ReuseParent does.
Status WriterImpl::ProcessPatch(const Job& job) {
  VolumeWriterImpl* volume = job.volume;
  const VolumeIndex& parent = volume->parent();
  const Digest& base = parent.chunks[job.index];
  if (base != kZeroDigest) SP_RETURN_IF_ERROR(volume->TouchParentObject(job.index, base));
  std::map<uint32_t, Digest> merged;
  auto [first, last] = parent.OverridesOf(job.index);
  for (size_t i = first; i < last; ++i) merged[parent.overrides[i].sub] = parent.overrides[i].id;
  for (const auto& sub : job.patch) merged.erase(sub.first);
  for (const auto& entry : merged) {
    if (entry.second != kZeroDigest) {
      SP_RETURN_IF_ERROR(volume->TouchParentObject(job.index, entry.second));
    }
  }
  for (const auto& sub : job.patch) {
    Digest id = kZeroDigest;
    if (!IsAllZero(sub.second)) {
      id = repo_->codec().Id(sub.second);
      SP_RETURN_IF_ERROR(StoreChunk(volume, id, sub.second));
    }
    merged[sub.first] = id;
  }
  bool all_zero = base == kZeroDigest;
  std::vector<SubChunkOverride> overrides;
  for (const auto& entry : merged) {
    overrides.push_back(SubChunkOverride{job.index, entry.first, entry.second});
    all_zero = all_zero && entry.second == kZeroDigest;
  }
  if (all_zero) {  // e.g. the changed parts of a mostly empty chunk were discarded
    volume->SetId(job.index, kZeroDigest);
    ++volume->zero_chunks;
    return absl::OkStatus();
  }
  volume->SetComposite(job.index, base, std::move(overrides));
  ++volume->patched_chunks;
  return absl::OkStatus();
}

void WriterImpl::NoteDirty(const Digest& id) {
  absl::MutexLock lock(&mutex_);
  dirty_dirs_.set(id[0]);
}

Status WriterImpl::TouchChunk(const Digest& id) {
  SP_RETURN_IF_ERROR(repo_->fs()->Touch(repo_->ChunkPath(id)));
  NoteDirty(id);
  return absl::OkStatus();
}

Status WriterImpl::StoreChunk(VolumeWriterImpl* volume, const Digest& id, absl::string_view data) {
  // Deduplication: an existing chunk gets a fresh timestamp so that a concurrent gc spares it.
  Status touched = TouchChunk(id);
  if (touched.ok()) {
    ++reused_chunks;
    return absl::OkStatus();
  }
  if (!absl::IsNotFound(touched)) return touched;
  {
    absl::MutexLock lock(&mutex_);
    if (!claimed_.insert(id).second) {  // stored by this write already, maybe not yet published
      ++reused_chunks;
      return absl::OkStatus();
    }
  }
  SP_ASSIGN_OR_RETURN(std::string object, repo_->codec().Encode(id, data));
  uint64_t stored = stored_bytes_ += object.size();
  if (budget_ && stored > *budget_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "VM '", request_.vm.name, "' reached its space limit while writing recovery point ", id_,
        "; raise it with `stillpoint vm set-limit ", request_.vm.name,
        " SIZE` or remove old points with `stillpoint repo prune ", request_.vm.name,
        " --keep-last N`"));
  }
  SP_RETURN_IF_ERROR(WriteUnsynced(id, object));
  ++volume->new_chunks;
  volume->new_stored_bytes += object.size();
  return absl::OkStatus();
}

Status WriterImpl::WriteUnsynced(const Digest& id, absl::string_view object) {
  static std::atomic<uint64_t> counter{0};
  std::string path = repo_->ChunkPath(id);
  std::string temp = absl::StrFormat("%s.tmp.%d.%d", path, ::getpid(), counter.fetch_add(1));
  {
    FileSystem* fs = repo_->fs();
    auto remove_temp = absl::MakeCleanup([&] { fs->DeleteFile(temp).IgnoreError(); });
    SP_ASSIGN_OR_RETURN(auto file, fs->NewWritableFile(temp));
    SP_RETURN_IF_ERROR(file->Append(object));
    SP_RETURN_IF_ERROR(file->Close());
    std::move(remove_temp).Cancel();
  }
  bool publish = false;
  {
    absl::MutexLock lock(&mutex_);
    unpublished_.push_back({std::move(temp), std::move(path), id[0]});
    unpublished_bytes_ += object.size();
    publish = unpublished_bytes_ >= kBatchBytes;
  }
  return publish ? PublishBatch() : absl::OkStatus();
}

Status WriterImpl::PublishBatch() {
  absl::MutexLock publishing(&publish_mutex_);
  std::vector<Unpublished> batch;
  {
    absl::MutexLock lock(&mutex_);
    batch.swap(unpublished_);
    unpublished_bytes_ = 0;
  }
  if (batch.empty()) return absl::OkStatus();
  FileSystem* fs = repo_->fs();
  Status status = fs->SyncFileSystem(repo_->path());
  size_t done = 0;
  for (; status.ok() && done < batch.size(); ++done) {
    status = fs->Rename(batch[done].temp, batch[done].path);
  }
  if (!status.ok()) {
    // What was not renamed goes back, so that an abort removes it.
    absl::MutexLock lock(&mutex_);
    for (size_t i = done; i < batch.size(); ++i) unpublished_.push_back(std::move(batch[i]));
    return status;
  }
  absl::MutexLock lock(&mutex_);
  for (const Unpublished& chunk : batch) dirty_dirs_.set(chunk.fan);
  return absl::OkStatus();
}

// --- WriterImpl: commit -----------------------------------------------------------------------

StatusOr<Manifest> WriterImpl::Commit(const PointDescription& description) {
  if (finished_) return absl::FailedPreconditionError("recovery point already committed/aborted");
  Status status = Drain();
  if (status.ok()) status = PublishBatch();
  for (const auto& volume : volumes_) {
    if (!status.ok()) break;
    uint64_t missing = volume->FirstMissing();
    if (missing < volume->chunk_count()) {
      status = absl::FailedPreconditionError(
          absl::StrCat("volume '", volume->name(), "': chunk ", missing, " (offset ",
                       missing * repo_->config().chunk_size, ") was never written"));
    }
  }
  // A manifest that would not read back would make a point nobody can use (and stop gc).
  if (status.ok()) {
    status =
        DecodePointDescription(EncodePointDescription(description), "point description").status();
    if (!status.ok()) status = absl::InvalidArgumentError(status.message());
  }
  StatusOr<Manifest> manifest =
      status.ok() ? WriteIndexesAndManifest(description) : StatusOr<Manifest>(status);
  if (!manifest.ok()) {
    Abort();
    return Annotate(manifest.status(),
                    absl::StrCat("recovery point ", id_, " of VM '", request_.vm.name, "' failed"));
  }
  finished_ = true;
  StopWorkers();
  repo_->fs()->DeleteFile(PendingPath(repo_, id_)).IgnoreError();
  pending_lock_.reset();
  vm_lock_.reset();
  return manifest;
}

StatusOr<Manifest> WriterImpl::WriteIndexesAndManifest(const PointDescription& description) {
  FileSystem* fs = repo_->fs();
  std::bitset<256> dirty;
  {
    absl::MutexLock lock(&mutex_);
    dirty = dirty_dirs_;
  }
  for (int fan = 0; fan < 256; ++fan) {
    if (!dirty.test(static_cast<size_t>(fan))) continue;
    SP_RETURN_IF_ERROR(
        fs->SyncDir(absl::StrFormat("%s/%s/%02x", repo_->path(), internal::kChunksDir, fan)));
  }
  Manifest manifest;
  manifest.id = id_;
  manifest.vm_id = request_.vm.id;
  manifest.vm_name = request_.vm.name;
  manifest.name = request_.name.empty() ? request_.vm.name : request_.name;
  manifest.description = request_.description;
  manifest.parent_id = request_.parent_id;
  manifest.created_micros = created_micros_;
  manifest.chunk_size = repo_->config().chunk_size;
  manifest.point_description = description;
  std::string dir = repo_->PointDir(id_);
  for (size_t i = 0; i < volumes_.size(); ++i) {
    const VolumeWriterImpl& volume = *volumes_[i];
    std::string bytes = internal::EncodeIndex(volume.Index());
    ManifestVolume entry{volume.name(),     volume.size(),          absl::StrCat(i, ".idx"),
                         Sha256(bytes),     volume.chunk_count(),   volume.zero_chunks,
                         volume.new_chunks, volume.new_stored_bytes};
    SP_RETURN_IF_ERROR(fs->WriteFileDurably(JoinPath(dir, entry.index_file), bytes));
    manifest.volumes.push_back(std::move(entry));
  }
  SP_RETURN_IF_ERROR(fs->SyncDir(absl::StrCat(repo_->path(), "/", internal::kPointsDir)));
  manifest.committed_micros = repo_->options().clock->UnixMicros();
  // The commit point: the manifest makes the recovery point exist.
  SP_RETURN_IF_ERROR(
      fs->WriteFileDurably(JoinPath(dir, internal::kManifestFile), EncodeManifest(manifest)));
  return manifest;
}

}  // namespace

StatusOr<std::unique_ptr<RecoveryPointWriter>> Repository::BeginRecoveryPoint(
    const RecoveryPointRequest& request) {
  if (request.vm.id.empty()) return absl::InvalidArgumentError("a recovery point needs a VM id");
  std::string vm_label = request.vm.name.empty() ? request.vm.id : request.vm.name;
  auto vm_lock = fs()->TryLock(
      absl::StrCat(path_, "/", internal::kLocksDir, "/", internal::VmLockName(request.vm.id)));
  if (absl::IsFailedPrecondition(vm_lock.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("another backup of VM '", vm_label, "' is running; wait for it to finish"));
  }
  if (!vm_lock.ok()) return vm_lock.status();
  std::optional<Manifest> parent;
  if (!request.parent_id.empty()) {
    SP_ASSIGN_OR_RETURN(parent, GetRecoveryPoint(request.parent_id));
    if (parent->chunk_size != config_.chunk_size) {
      return absl::FailedPreconditionError("the parent point has another chunk size");
    }
  }
  std::optional<uint64_t> budget;
  if (request.space_limit_bytes) {
    SP_RETURN_IF_ERROR(CheckSpace(request.vm, request.estimated_bytes, request.space_limit_bytes));
    SP_ASSIGN_OR_RETURN(VmUsage usage, Usage(request.vm.id));
    budget = *request.space_limit_bytes - std::min(usage.stored_bytes, *request.space_limit_bytes);
  }
  SP_RETURN_IF_ERROR(UpgradeFormat());
  std::string id = internal::NewPointId(options_.clock->UnixMicros());
  // Registering in pending/ first tells a concurrent gc when this writer started.
  SP_ASSIGN_OR_RETURN(auto pending_lock,
                      fs()->TryLock(absl::StrCat(path_, "/", internal::kPendingDir, "/", id)));
  SP_RETURN_IF_ERROR(fs()->CreateDir(PointDir(id)));
  RecoveryPointRequest copy = request;
  if (!parent)
    copy.parent_id.clear();
  else
    copy.parent_id = parent->id;
  return std::unique_ptr<RecoveryPointWriter>(
      new WriterImpl(this, std::move(copy), std::move(id), *std::move(vm_lock),
                     std::move(pending_lock), std::move(parent), budget));
}

}  // namespace sp::repo
