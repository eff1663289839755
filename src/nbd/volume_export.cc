#include "nbd/volume_export.h"

#include <pthread.h>

#include <deque>
#include <list>
#include <thread>
#include <unordered_map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace sp::nbd {

// One chunk being decoded or decoded. Immutable once `done`; readers keep it alive while they copy.
struct Slot {
  bool done = false;
  bool ahead = false;  // started by readahead
  Status status;
  std::shared_ptr<const std::string> data;
};

struct VolumeExport::State {
  std::shared_ptr<repo::Repository> repo;
  std::unique_ptr<repo::VolumeReader> reader;  // refers to *repo: declared after it
  ExportOptions options;
  std::string point_id;
  std::string volume;
  size_t capacity = 0;  // decoded chunks kept in the cache
  std::vector<std::thread> workers;

  mutable absl::Mutex mu;
  // Chunks decoding (queued or in a worker) and decoded (in the LRU list as well).
  std::unordered_map<uint64_t, std::shared_ptr<Slot>> slots ABSL_GUARDED_BY(mu);
  std::list<uint64_t> lru ABSL_GUARDED_BY(mu);  // decoded chunks, most recently used first
  std::unordered_map<uint64_t, std::list<uint64_t>::iterator> lru_position ABSL_GUARDED_BY(mu);
  std::deque<uint64_t> wanted ABSL_GUARDED_BY(mu);  // chunks a request waits for
  std::deque<uint64_t> ahead ABSL_GUARDED_BY(mu);   // readahead: taken when `wanted` is empty
  bool stopping ABSL_GUARDED_BY(mu) = false;
  int live_workers ABSL_GUARDED_BY(mu) = 0;
  ExportStats stats ABSL_GUARDED_BY(mu);

  // The slot of stored chunk `index`, queueing its decode when it is neither cached nor under way.
  // `started` tells whether this call queued it.
  std::shared_ptr<Slot> Request(uint64_t index, bool* started) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void StartAhead(uint64_t after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  void Finish(uint64_t index, const std::shared_ptr<Slot>& slot, StatusOr<std::string> chunk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);
  Status Timeout(uint64_t index) const;
};

namespace {

absl::Duration Remaining(const Deadline& deadline) {
  auto left = deadline.at() - std::chrono::steady_clock::now();
  return left.count() > 0 ? absl::FromChrono(left) : absl::ZeroDuration();
}

void WorkerLoop(const std::shared_ptr<VolumeExport::State>& state) {
  while (true) {
    uint64_t index = 0;
    std::shared_ptr<Slot> slot;
    {
      absl::MutexLock lock(&state->mu);
      state->mu.Await(absl::Condition(
          +[](VolumeExport::State* s) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return s->stopping || !s->wanted.empty() || !s->ahead.empty();
          },
          state.get()));
      if (state->stopping) {
        --state->live_workers;
        return;
      }
      std::deque<uint64_t>& queue = state->wanted.empty() ? state->ahead : state->wanted;
      index = queue.front();
      queue.pop_front();
      slot = state->slots.at(index);  // only decoded slots are ever evicted
    }
    StatusOr<std::string> chunk = state->reader->ReadChunk(index);
    absl::MutexLock lock(&state->mu);
    state->Finish(index, slot, std::move(chunk));
  }
}

}  // namespace

std::shared_ptr<Slot> VolumeExport::State::Request(uint64_t index, bool* started) {
  auto found = slots.find(index);
  if (found != slots.end()) {
    *started = false;
    ++stats.hits;
    auto position = lru_position.find(index);
    if (position != lru_position.end()) lru.splice(lru.begin(), lru, position->second);
    return found->second;
  }
  *started = true;
  ++stats.misses;
  auto slot = std::make_shared<Slot>();
  slots.emplace(index, slot);
  wanted.push_back(index);
  return slot;
}

void VolumeExport::State::StartAhead(uint64_t after) {
  uint64_t end =
      std::min(reader->chunk_count(), after + 1 + static_cast<uint64_t>(options.readahead));
  for (uint64_t index = after + 1; index < end; ++index) {
    if (reader->IsZeroChunk(index) || slots.count(index) != 0) continue;
    auto slot = std::make_shared<Slot>();
    slot->ahead = true;
    slots.emplace(index, slot);
    ahead.push_back(index);
    ++stats.readahead;
  }
}

void VolumeExport::State::Finish(uint64_t index, const std::shared_ptr<Slot>& slot,
                                 StatusOr<std::string> chunk) {
  slot->done = true;
  if (!chunk.ok()) {
    // Not cached: a later request reads the chunk again (the store may have been repaired).
    slot->status = chunk.status();
    slots.erase(index);
    ++stats.failed;
    return;
  }
  slot->data = std::make_shared<const std::string>(*std::move(chunk));
  ++stats.decoded;
  lru.push_front(index);
  lru_position[index] = lru.begin();
  while (lru.size() > capacity) {
    uint64_t oldest = lru.back();
    lru.pop_back();
    lru_position.erase(oldest);
    slots.erase(oldest);
  }
}

Status VolumeExport::State::Timeout(uint64_t index) const {
  return absl::DeadlineExceededError(
      absl::StrCat("recovery point ", point_id, ", volume '", volume, "', offset ",
                   index * reader->chunk_size(), ": the repository did not answer within ",
                   absl::FormatDuration(absl::FromChrono(options.read_timeout))));
}

VolumeExport::VolumeExport(std::shared_ptr<State> state) : state_(std::move(state)) {}

StatusOr<std::unique_ptr<VolumeExport>> VolumeExport::Open(std::shared_ptr<repo::Repository> repo,
                                                           absl::string_view point_id,
                                                           absl::string_view volume,
                                                           const ExportOptions& options) {
  if (options.workers < 1 || options.readahead < 0 || options.read_timeout <= Millis(0)) {
    return absl::InvalidArgumentError("export options: workers ≥ 1, readahead ≥ 0, timeout > 0");
  }
  SP_ASSIGN_OR_RETURN(repo::Manifest manifest, repo->GetRecoveryPoint(point_id));
  auto state = std::make_shared<State>();
  SP_ASSIGN_OR_RETURN(state->reader, repo->OpenVolume(manifest.id, volume));
  state->repo = std::move(repo);
  state->options = options;
  state->point_id = manifest.id;
  state->volume = std::string(volume);
  state->capacity = std::max<size_t>(options.cache_bytes / state->reader->chunk_size(),
                                     static_cast<size_t>(options.workers + options.readahead + 1));
  {
    absl::MutexLock lock(&state->mu);
    state->live_workers = options.workers;
  }
  for (int i = 0; i < options.workers; ++i) {
    state->workers.emplace_back([state] { WorkerLoop(state); });
    ::pthread_setname_np(state->workers.back().native_handle(), "sp-nbd-chunk");
  }
  return std::unique_ptr<VolumeExport>(new VolumeExport(std::move(state)));
}

VolumeExport::~VolumeExport() {
  State& state = *state_;
  bool all_ended = false;
  {
    absl::MutexLock lock(&state.mu);
    state.stopping = true;
    all_ended = state.mu.AwaitWithTimeout(
        absl::Condition(
            +[](State* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->live_workers == 0; }, &state),
        absl::FromChrono(2 * state.options.read_timeout));
  }
  for (std::thread& worker : state.workers) {
    if (all_ended) {
      worker.join();
    } else {
      worker.detach();  // stuck in a read; it holds the state until the read returns
    }
  }
}

Status VolumeExport::Read(uint64_t offset, uint64_t length, char* buffer) const {
  State& state = *state_;
  const uint64_t size = state.reader->size();
  if (offset > size || length > size - offset) {
    return absl::OutOfRangeError(absl::StrCat("read of ", length, " bytes at ", offset,
                                              " is past the end of volume '", state.volume, "' (",
                                              size, " bytes)"));
  }
  if (length == 0) return absl::OkStatus();
  const uint64_t chunk_size = state.reader->chunk_size();
  const uint64_t first = offset / chunk_size;
  const uint64_t last = (offset + length - 1) / chunk_size;
  // Every stored chunk of the range is requested first, so that they decode in parallel.
  std::vector<std::shared_ptr<Slot>> slots(last - first + 1);
  {
    absl::MutexLock lock(&state.mu);
    bool sequential = false;
    for (uint64_t index = first; index <= last; ++index) {
      if (state.reader->IsZeroChunk(index)) continue;
      bool started = false;
      slots[index - first] = state.Request(index, &started);
      sequential = sequential || started || slots[index - first]->ahead;
    }
    if (sequential) state.StartAhead(last);
  }
  const Deadline deadline = Deadline::In(state.options.read_timeout);
  for (uint64_t index = first; index <= last; ++index) {
    uint64_t start = std::max(offset, index * chunk_size);
    uint64_t end = std::min(offset + length, (index + 1) * chunk_size);
    char* target = buffer + (start - offset);
    const std::shared_ptr<Slot>& slot = slots[index - first];
    if (slot == nullptr) {
      std::memset(target, 0, end - start);
      continue;
    }
    {
      absl::MutexLock lock(&state.mu);
      if (!state.mu.AwaitWithTimeout(absl::Condition(&slot->done), Remaining(deadline))) {
        ++state.stats.timeouts;
        return state.Timeout(index);
      }
    }
    SP_RETURN_IF_ERROR(slot->status);
    std::memcpy(target, slot->data->data() + (start - index * chunk_size), end - start);
  }
  return absl::OkStatus();
}

std::vector<ExportExtent> VolumeExport::Extents(uint64_t offset, uint64_t length) const {
  const repo::VolumeReader& reader = *state_->reader;
  const uint64_t chunk_size = reader.chunk_size();
  const uint64_t end = std::min(offset + length, reader.size());
  std::vector<ExportExtent> extents;
  for (uint64_t position = offset; position < end;) {
    uint64_t index = position / chunk_size;
    uint64_t run_end = std::min(end, (index + 1) * chunk_size);
    bool zero = reader.IsZeroChunk(index);
    if (!extents.empty() && extents.back().zero == zero) {
      extents.back().length += run_end - position;
    } else {
      extents.push_back({position, run_end - position, zero});
    }
    position = run_end;
  }
  return extents;
}

uint64_t VolumeExport::size() const { return state_->reader->size(); }
uint32_t VolumeExport::chunk_size() const { return state_->reader->chunk_size(); }
const std::string& VolumeExport::point_id() const { return state_->point_id; }
const std::string& VolumeExport::volume() const { return state_->volume; }

ExportStats VolumeExport::stats() const {
  absl::MutexLock lock(&state_->mu);
  ExportStats stats = state_->stats;
  stats.cached_chunks = state_->lru.size();
  return stats;
}

}  // namespace sp::nbd
