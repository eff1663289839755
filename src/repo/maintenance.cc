// Maintenance over the whole repository: space accounting, stats, verify, gc and prune.
#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/str_format.h"
#include "repo/internal/chunk_codec.h"
#include "repo/internal/layout.h"
#include "repo/repository.h"
#include "repo/units.h"

namespace sp::repo {
namespace {

struct DigestHash {
  size_t operator()(const Digest& digest) const {
    size_t value;
    std::memcpy(&value, digest.data(), sizeof(value));
    return value;
  }
};
using DigestSet = std::unordered_set<Digest, DigestHash>;

// Every stored object `index` refers to (bases and sub-chunk overrides; zero ids skipped), with
// the volume offset it serves, possibly more than once.
template <typename Visit>
void ForEachObject(const internal::VolumeIndex& index, Visit visit) {
  for (uint64_t i = 0; i < index.chunks.size(); ++i) {
    if (index.chunks[i] != kZeroDigest) visit(index.chunks[i], i * index.chunk_size);
  }
  for (const internal::SubChunkOverride& entry : index.overrides) {
    if (entry.id == kZeroDigest) continue;
    visit(entry.id,
          entry.chunk * index.chunk_size + static_cast<uint64_t>(entry.sub) * index.sub_chunk_size);
  }
}

std::string FanDir(const std::string& repo, int fan) {
  return absl::StrFormat("%s/%s/%02x", repo, internal::kChunksDir, fan);
}

constexpr int64_t kStalePendingMicros = 10LL * 60 * 1000000;

}  // namespace

StatusOr<VmUsage> Repository::Usage(absl::string_view vm_id) {
  SP_ASSIGN_OR_RETURN(auto points, ListRecoveryPoints());
  VmUsage usage;
  DigestSet chunks;
  for (const Manifest& manifest : points) {
    if (manifest.vm_id != vm_id) continue;
    ++usage.points;
    std::string dir = PointDir(manifest.id);
    if (auto info = fs()->Stat(JoinPath(dir, internal::kManifestFile)); info.ok()) {
      usage.stored_bytes += info->size;
    }
    for (const ManifestVolume& volume : manifest.volumes) {
      SP_ASSIGN_OR_RETURN(auto index, LoadIndex(manifest, volume));
      if (auto info = fs()->Stat(JoinPath(dir, volume.index_file)); info.ok()) {
        usage.stored_bytes += info->size;
      }
      ForEachObject(index, [&](const Digest& id, uint64_t) {
        if (!chunks.insert(id).second) return;
        if (auto info = fs()->Stat(ChunkPath(id)); info.ok()) usage.stored_bytes += info->size;
      });
    }
  }
  return usage;
}

Status Repository::CheckSpace(const VmIdentity& vm, uint64_t estimated_bytes,
                              std::optional<uint64_t> limit) {
  if (!limit) return absl::OkStatus();
  SP_ASSIGN_OR_RETURN(VmUsage usage, Usage(vm.id));
  if (usage.stored_bytes <= *limit && estimated_bytes <= *limit - usage.stored_bytes) {
    return absl::OkStatus();
  }
  std::string name = vm.name.empty() ? vm.id : vm.name;
  return absl::ResourceExhaustedError(absl::StrCat(
      "VM '", name, "' has a space limit of ", FormatBytes(*limit), " and its ", usage.points,
      " recovery points use ", FormatBytes(usage.stored_bytes), "; this one may add up to ",
      FormatBytes(estimated_bytes), ". Raise the limit with `stillpoint vm set-limit ", name,
      " SIZE`, or remove old points with `stillpoint repo prune ", name,
      " --keep-last N` and then `stillpoint repo gc`"));
}

StatusOr<RepositoryStats> Repository::Stats() {
  RepositoryStats stats;
  SP_ASSIGN_OR_RETURN(auto points, ListRecoveryPoints());
  stats.points = points.size();
  for (const Manifest& manifest : points) stats.logical_bytes += manifest.LogicalBytes();
  for (int fan = 0; fan < 256; ++fan) {
    SP_ASSIGN_OR_RETURN(auto names, fs()->ListDir(FanDir(path_, fan)));
    for (const std::string& name : names) {
      if (internal::IsTempName(name)) continue;
      auto info = fs()->Stat(JoinPath(FanDir(path_, fan), name));
      if (!info.ok()) continue;
      ++stats.chunk_count;
      stats.stored_bytes += info->size;
    }
  }
  return stats;
}

// --- verify -----------------------------------------------------------------------------------

StatusOr<VerifyReport> Repository::Verify(absl::string_view point_id) {
  VerifyReport report;
  std::vector<Manifest> points;
  if (!point_id.empty()) {
    SP_ASSIGN_OR_RETURN(Manifest manifest, GetRecoveryPoint(point_id));
    points.push_back(std::move(manifest));
  } else {
    SP_ASSIGN_OR_RETURN(auto names, fs()->ListDir(JoinPath(path_, internal::kPointsDir)));
    for (const std::string& name : names) {
      auto text = fs()->ReadWholeFile(JoinPath(PointDir(name), internal::kManifestFile));
      if (absl::IsNotFound(text.status())) continue;  // in progress or interrupted: not a point
      auto manifest = text.ok() ? DecodeManifest(*text) : StatusOr<Manifest>(text.status());
      if (!manifest.ok()) {
        report.damaged_points.push_back(absl::StrCat(name, ": ", manifest.status().message()));
        continue;
      }
      points.push_back(*std::move(manifest));
    }
  }
  // Pass 1: every distinct chunk once.
  DigestSet distinct;
  for (const Manifest& manifest : points) {
    ++report.points;
    for (const ManifestVolume& volume : manifest.volumes) {
      ++report.volumes;
      auto index = LoadIndex(manifest, volume);
      if (!index.ok()) {
        report.damaged_points.push_back(std::string(index.status().message()));
        continue;
      }
      ForEachObject(*index, [&](const Digest& id, uint64_t) { distinct.insert(id); });
    }
  }
  std::vector<Digest> ids(distinct.begin(), distinct.end());
  distinct.clear();
  std::unordered_map<Digest, std::string, DigestHash> bad;
  std::mutex bad_mutex;
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> bytes{0};
  auto check = [&] {
    for (size_t i = next++; i < ids.size(); i = next++) {
      auto file = fs()->NewRandomAccessFile(ChunkPath(ids[i]));
      StatusOr<std::string> plain =
          file.ok() ? codec().ReadAndDecode(**file, ids[i]) : StatusOr<std::string>(file.status());
      if (plain.ok()) {
        bytes += plain->size();
        continue;
      }
      std::string what = absl::IsNotFound(plain.status()) ? "chunk is missing"
                                                          : std::string(plain.status().message());
      std::lock_guard<std::mutex> lock(bad_mutex);
      bad[ids[i]] = what;
    }
  };
  // Twice the cores: each thread waits for its reads part of the time, and another one decodes
  // meanwhile (measured with a cold page cache: one thread a core kept 1.3 of 2 cores busy).
  unsigned thread_count = std::clamp(2 * std::thread::hardware_concurrency(), 2u, 16u);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < thread_count; ++i) threads.emplace_back(check);
  for (auto& thread : threads) thread.join();
  report.chunks_checked = ids.size();
  report.bytes_checked = bytes;
  if (bad.empty()) return report;
  // Pass 2: name every position that refers to a bad chunk.
  for (const Manifest& manifest : points) {
    for (const ManifestVolume& volume : manifest.volumes) {
      auto index = LoadIndex(manifest, volume);
      if (!index.ok()) continue;
      ForEachObject(*index, [&](const Digest& id, uint64_t offset) {
        auto found = bad.find(id);
        if (found == bad.end()) return;
        report.problems.push_back(
            VerifyProblem{manifest.id, volume.name, offset, DigestHex(id), found->second});
      });
    }
  }
  return report;
}

// --- gc ---------------------------------------------------------------------------------------

namespace {

// One run of garbage collection. See docs/repository-format.md ("Garbage collection") for why
// this is safe beside running backups.
class Collector {
 public:
  explicit Collector(Repository* repo) : repo_(repo), fs_(repo->fs()) {}
  StatusOr<GcReport> Run();

 private:
  std::string At(absl::string_view relative) const {
    return absl::StrCat(repo_->path(), "/", relative);
  }
  Status RestoreTrash();
  Status StartClock();
  Status ScanPending();
  Status Mark();
  Status RemoveIncompletePoint(const std::string& name);
  Status SweepDir(int fan);
  Status SweepChunk(const std::string& dir, const std::string& name, bool* changed);

  Repository* const repo_;
  FileSystem* const fs_;
  int64_t cutoff_ = 0;  // nothing modified at or after this is deleted
  int64_t gc_start_ = 0;
  std::set<std::string> live_points_;
  DigestSet marked_;
  GcReport report_;
};

StatusOr<GcReport> Collector::Run() {
  auto lock = fs_->TryLock(At(internal::kGcLock));
  if (absl::IsFailedPrecondition(lock.status())) {
    return absl::FailedPreconditionError("another gc of this repository is running");
  }
  if (!lock.ok()) return lock.status();
  SP_RETURN_IF_ERROR(RestoreTrash());
  SP_RETURN_IF_ERROR(StartClock());
  SP_RETURN_IF_ERROR(ScanPending());
  SP_RETURN_IF_ERROR(Mark());
  for (int fan = 0; fan < 256; ++fan) SP_RETURN_IF_ERROR(SweepDir(fan));
  fs_->DeleteFile(At(internal::kGcMarker)).IgnoreError();
  return report_;
}

// A gc that died between moving a chunk to the trash and deciding its fate leaves it there:
// put everything back and decide again.
Status Collector::RestoreTrash() {
  SP_ASSIGN_OR_RETURN(auto names, fs_->ListDir(At(internal::kTrashDir)));
  for (const std::string& name : names) {
    auto id = ParseDigestHex(name);
    std::string from = JoinPath(At(internal::kTrashDir), name);
    if (!id.ok()) {
      SP_RETURN_IF_ERROR(fs_->DeleteFile(from));
      continue;
    }
    SP_RETURN_IF_ERROR(fs_->Rename(from, repo_->ChunkPath(*id)));
    SP_RETURN_IF_ERROR(fs_->SyncDir(DirName(repo_->ChunkPath(*id))));
  }
  return absl::OkStatus();
}

Status Collector::StartClock() {
  std::string marker = At(internal::kGcMarker);
  SP_RETURN_IF_ERROR(fs_->WriteFileDurably(marker, "gc started\n"));
  SP_ASSIGN_OR_RETURN(FileInfo info, fs_->Stat(marker));
  gc_start_ = info.modified_micros;
  cutoff_ = gc_start_ - repo_->options().timestamp_slack_micros;
  return absl::OkStatus();
}

// Writers still running (their pending file is locked) may hold chunks written before gc
// started and not yet named by any manifest: move the cutoff back to the oldest one's start.
Status Collector::ScanPending() {
  SP_ASSIGN_OR_RETURN(auto names, fs_->ListDir(At(internal::kPendingDir)));
  for (const std::string& name : names) {
    std::string path = JoinPath(At(internal::kPendingDir), name);
    auto info = fs_->Stat(path);
    if (!info.ok()) continue;
    auto lock = fs_->TryLock(path);
    if (absl::IsFailedPrecondition(lock.status())) {
      live_points_.insert(name);
      cutoff_ = std::min(cutoff_, info->modified_micros - repo_->options().timestamp_slack_micros);
      continue;
    }
    SP_RETURN_IF_ERROR(lock.status());
    if (info->modified_micros < gc_start_ - kStalePendingMicros) {
      fs_->DeleteFile(path).IgnoreError();  // its writer died long ago
    }
  }
  return absl::OkStatus();
}

Status Collector::Mark() {
  SP_ASSIGN_OR_RETURN(auto names, fs_->ListDir(At(internal::kPointsDir)));
  for (const std::string& name : names) {
    std::string dir = repo_->PointDir(name);
    auto text = fs_->ReadWholeFile(JoinPath(dir, internal::kManifestFile));
    if (absl::IsNotFound(text.status())) {
      if (live_points_.count(name) == 0) SP_RETURN_IF_ERROR(RemoveIncompletePoint(name));
      continue;
    }
    // When in doubt about what a point references, delete nothing.
    auto manifest = text.ok() ? DecodeManifest(*text) : StatusOr<Manifest>(text.status());
    if (!manifest.ok()) {
      return absl::DataLossError(absl::StrCat(
          "gc stopped without deleting anything: recovery point ", name, " is unreadable (",
          manifest.status().message(), "); run `stillpoint repo verify`"));
    }
    for (const ManifestVolume& volume : manifest->volumes) {
      auto index = repo_->LoadIndex(*manifest, volume);
      if (!index.ok()) {
        return absl::DataLossError(
            absl::StrCat("gc stopped without deleting anything: ", index.status().message()));
      }
      ForEachObject(*index, [&](const Digest& id, uint64_t) { marked_.insert(id); });
    }
  }
  report_.chunks_in_use = marked_.size();
  return absl::OkStatus();
}

Status Collector::RemoveIncompletePoint(const std::string& name) {
  std::string dir = repo_->PointDir(name);
  // A writer registers in pending/ before it creates its point directory: one that started
  // after ScanPending is still alive when its pending file is locked.
  std::string pending = JoinPath(At(internal::kPendingDir), name);
  std::unique_ptr<FileLock> dead_writer;
  if (fs_->Exists(pending)) {
    auto lock = fs_->TryLock(pending);
    if (absl::IsFailedPrecondition(lock.status())) return absl::OkStatus();
    SP_RETURN_IF_ERROR(lock.status());
    dead_writer = *std::move(lock);
  }
  SP_ASSIGN_OR_RETURN(auto files, fs_->ListDir(dir));
  for (const std::string& file : files) {
    auto info = fs_->Stat(JoinPath(dir, file));
    if (info.ok() && info->modified_micros >= cutoff_) return absl::OkStatus();  // too new
  }
  for (const std::string& file : files) {
    SP_RETURN_IF_ERROR(fs_->DeleteFile(JoinPath(dir, file)));
  }
  SP_RETURN_IF_ERROR(fs_->DeleteDir(dir));
  if (dead_writer) fs_->DeleteFile(pending).IgnoreError();
  ++report_.incomplete_points_removed;
  return absl::OkStatus();
}

Status Collector::SweepDir(int fan) {
  std::string dir = FanDir(repo_->path(), fan);
  SP_ASSIGN_OR_RETURN(auto names, fs_->ListDir(dir));
  bool changed = false;
  for (const std::string& name : names) SP_RETURN_IF_ERROR(SweepChunk(dir, name, &changed));
  if (changed) SP_RETURN_IF_ERROR(fs_->SyncDir(dir));
  return absl::OkStatus();
}

// Moves an unreferenced old chunk to the trash, then looks at its timestamp again: a writer that
// reused it in between has touched it, and it goes back. A writer that touches it after the move
// finds it missing and stores it anew.
Status Collector::SweepChunk(const std::string& dir, const std::string& name, bool* changed) {
  std::string path = JoinPath(dir, name);
  auto info = fs_->Stat(path);
  if (!info.ok()) return absl::OkStatus();
  if (internal::IsTempName(name)) {
    if (info->modified_micros < cutoff_ && fs_->DeleteFile(path).ok()) {
      ++report_.temp_files_removed;
      *changed = true;
    }
    return absl::OkStatus();
  }
  auto id = ParseDigestHex(name);
  if (!id.ok() || marked_.count(*id) != 0) return absl::OkStatus();
  if (info->modified_micros >= cutoff_) {
    ++report_.chunks_spared;
    return absl::OkStatus();
  }
  std::string trash = JoinPath(At(internal::kTrashDir), name);
  if (!fs_->Rename(path, trash).ok()) return absl::OkStatus();
  *changed = true;
  SP_ASSIGN_OR_RETURN(FileInfo moved, fs_->Stat(trash));
  if (moved.modified_micros >= cutoff_) {
    SP_RETURN_IF_ERROR(fs_->Rename(trash, path));
    SP_RETURN_IF_ERROR(fs_->SyncDir(dir));
    ++report_.chunks_spared;
    return absl::OkStatus();
  }
  SP_RETURN_IF_ERROR(fs_->DeleteFile(trash));
  ++report_.chunks_deleted;
  report_.bytes_freed += moved.size;
  return absl::OkStatus();
}

}  // namespace

StatusOr<GcReport> Repository::CollectGarbage() { return Collector(this).Run(); }

// --- prune ------------------------------------------------------------------------------------

StatusOr<std::vector<PruneDecision>> Repository::Prune(absl::string_view vm,
                                                       const PrunePolicy& policy, bool dry_run) {
  SP_ASSIGN_OR_RETURN(auto points, ListRecoveryPoints());
  std::vector<PruneCandidate> candidates;
  for (const Manifest& manifest : points) {
    if (manifest.vm_id == vm || manifest.vm_name == vm) {
      candidates.push_back(PruneCandidate{manifest.id, manifest.created_micros});
    }
  }
  if (candidates.empty()) {
    return absl::NotFoundError(absl::StrCat("VM '", vm, "' has no recovery points"));
  }
  SP_ASSIGN_OR_RETURN(auto decisions, DecidePrune(std::move(candidates), policy));
  if (dry_run) return decisions;
  for (const PruneDecision& decision : decisions) {
    if (!decision.keep) SP_RETURN_IF_ERROR(DeleteRecoveryPoint(decision.id));
  }
  return decisions;
}

}  // namespace sp::repo
