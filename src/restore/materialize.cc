#include "restore/materialize.h"

#include <fcntl.h>
#include <libnbd.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <vector>

#include "absl/strings/str_split.h"
#include "platform/clock.h"
#include "platform/files.h"
#include "platform/process.h"
#include "repo/internal/format.h"

namespace sp::restore {
namespace {

// A file descriptor closed on the way out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  Status Close(const std::string& path) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return ErrnoStatus(errno, "close " + path);
    return absl::OkStatus();
  }

 private:
  int fd_;
};

Status WriteAllAt(int fd, const std::string& data, uint64_t offset, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "write " + path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// Walks the chunks of a volume in order: zero chunks are only counted, every other chunk goes to
// `write` with its offset. Counts bytes in `stats` (whose size is set) and reports progress.
Status ForEachDataChunk(repo::VolumeStream& stream, uint64_t chunk_size,
                        const MaterializeProgress& progress, MaterializeStats* stats,
                        const std::function<Status(std::string data, uint64_t offset)>& write) {
  uint64_t offset = 0;
  std::string data;
  bool is_zero = false;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool more, stream.Next(&data, &is_zero));
    if (!more) break;
    uint64_t length = std::min<uint64_t>(chunk_size, stats->size - offset);
    if (is_zero) {
      stats->zero_bytes += length;
    } else {
      stats->data_bytes += data.size();
      SP_RETURN_IF_ERROR(write(std::move(data), offset));
    }
    offset += length;
    if (progress) progress(offset, stats->size);
  }
  return absl::OkStatus();
}

// Streams the volume into a sparse raw file at `path` (created with `mode`, must not exist).
Status WriteSparseRaw(repo::Repository& repo, absl::string_view point_id, absl::string_view volume,
                      const std::string& path, unsigned mode, const MaterializeProgress& progress,
                      MaterializeStats* stats) {
  SP_ASSIGN_OR_RETURN(auto reader, repo.OpenVolume(point_id, volume));
  SP_ASSIGN_OR_RETURN(auto stream, repo.OpenStream(point_id, volume));
  stats->size = reader->size();
  SP_ASSIGN_OR_RETURN(int created, CreateNewFile(path, mode));
  Fd fd(created);
  if (::ftruncate(fd.get(), static_cast<off_t>(stats->size)) != 0) {
    return ErrnoStatus(errno, "size " + path);
  }
  SP_RETURN_IF_ERROR(ForEachDataChunk(
      *stream, reader->chunk_size(), progress, stats,
      [&](std::string data, uint64_t offset) { return WriteAllAt(fd.get(), data, offset, path); }));
  if (::fdatasync(fd.get()) != 0) return ErrnoStatus(errno, "sync " + path);
  return fd.Close(path);
}

// An NBD connection to a private, writable qemu-nbd serving one new qcow2 image (libnbd starts it
// by socket activation and it exits when the handle closes).
class Qcow2Target {
 public:
  ~Qcow2Target() {
    if (handle_ != nullptr) nbd_close(handle_);
  }
  Status Open(const std::string& path) {
    handle_ = nbd_create();
    if (handle_ == nullptr) return Error("libnbd");
    std::vector<std::string> args = {"qemu-nbd", "--format=qcow2", "--cache=writeback",
                                     "--discard=unmap", path};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (nbd_connect_systemd_socket_activation(handle_, argv.data()) < 0) {
      return Error("starting qemu-nbd on " + path);
    }
    return absl::OkStatus();
  }
  // Queues a write of `data` at `offset`; keeps up to kWritesInFlight writes in flight so that
  // decoding, the socket and qemu-nbd's disk writes overlap.
  Status Write(std::string data, uint64_t offset) {
    while (pending_.size() >= kWritesInFlight) SP_RETURN_IF_ERROR(RetireOldest());
    pending_.push_back({0, std::move(data)});
    const std::string& buffer = pending_.back().data;
    int64_t cookie =
        nbd_aio_pwrite(handle_, buffer.data(), buffer.size(), offset, NBD_NULL_COMPLETION, 0);
    if (cookie < 0) {
      pending_.pop_back();
      return Error(absl::StrCat("writing at offset ", offset));
    }
    pending_.back().cookie = cookie;
    return absl::OkStatus();
  }
  Status Finish() {
    while (!pending_.empty()) SP_RETURN_IF_ERROR(RetireOldest());
    int64_t flush = nbd_aio_flush(handle_, NBD_NULL_COMPLETION, 0);
    if (flush < 0) return Error("flush");
    SP_RETURN_IF_ERROR(AwaitCompletion(flush, "flush"));
    if (nbd_shutdown(handle_, 0) < 0) return Error("shutdown");
    return absl::OkStatus();
  }

 private:
  static constexpr size_t kWritesInFlight = 4;
  // A qemu-nbd that takes longer than this for one request is stuck (its disk, or itself).
  static constexpr Millis kRequestTimeout{120'000};
  struct Pending {
    int64_t cookie;
    std::string data;  // must stay untouched until the write completed
  };

  Status RetireOldest() {
    SP_RETURN_IF_ERROR(AwaitCompletion(pending_.front().cookie, "write"));
    pending_.pop_front();
    return absl::OkStatus();
  }

  // Waits for the request `cookie`, at most kRequestTimeout.
  Status AwaitCompletion(int64_t cookie, const char* what) {
    Deadline deadline = Deadline::In(kRequestTimeout);
    while (true) {
      int done = nbd_aio_command_completed(handle_, static_cast<uint64_t>(cookie));
      if (done < 0) return Error(what);
      if (done == 1) return absl::OkStatus();
      if (deadline.Expired()) {
        return absl::DeadlineExceededError(absl::StrCat("qemu-nbd did not complete a ", what,
                                                        " within ", kRequestTimeout.count() / 1000,
                                                        " s (is the target disk hung?)"));
      }
      if (nbd_poll(handle_, std::max(1, deadline.PollTimeoutMs())) < 0) {
        return Error("waiting for qemu-nbd");
      }
    }
  }

  static Status Error(const std::string& what) {
    const char* error = nbd_get_error();
    return absl::UnavailableError(absl::StrCat(what, ": ", error != nullptr ? error : "unknown"));
  }
  nbd_handle* handle_ = nullptr;
  std::deque<Pending> pending_;
};

// Streams the volume into a new qcow2 image at `path` (created with `mode`, must not exist): only
// non-zero chunks are written, so the others stay unallocated clusters.
Status WriteQcow2(repo::Repository& repo, absl::string_view point_id, absl::string_view volume,
                  const std::string& path, unsigned mode, const MaterializeProgress& progress,
                  MaterializeStats* stats) {
  SP_ASSIGN_OR_RETURN(auto reader, repo.OpenVolume(point_id, volume));
  SP_ASSIGN_OR_RETURN(auto stream, repo.OpenStream(point_id, volume));
  stats->size = reader->size();
  // qemu-img creates new files 0644; one that exists keeps its mode, so make it first.
  SP_ASSIGN_OR_RETURN(int created, CreateNewFile(path, mode));
  SP_RETURN_IF_ERROR(Fd(created).Close(path));
  SP_RETURN_IF_ERROR(
      RunCommandOk({"qemu-img", "create", "-q", "-f", "qcow2", path, absl::StrCat(stats->size)},
                   Deadline::In(Millis(60'000)))
          .status());
  Qcow2Target target;
  SP_RETURN_IF_ERROR(target.Open(path));
  SP_RETURN_IF_ERROR(ForEachDataChunk(
      *stream, reader->chunk_size(), progress, stats,
      [&](std::string data, uint64_t offset) { return target.Write(std::move(data), offset); }));
  return target.Finish();
}

}  // namespace

const char* ImageFormatName(ImageFormat format) {
  return format == ImageFormat::kQcow2 ? "qcow2" : "raw";
}

StatusOr<ImageFormat> ParseImageFormat(absl::string_view text) {
  if (text == "qcow2") return ImageFormat::kQcow2;
  if (text == "raw") return ImageFormat::kRaw;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown image format '", text, "': use qcow2 or raw"));
}

StatusOr<MaterializeStats> MaterializeVolume(repo::Repository& repo, absl::string_view point_id,
                                             absl::string_view volume, const std::string& path,
                                             ImageFormat format,
                                             const MaterializeProgress& progress, unsigned mode) {
  if (PathExists(path)) {
    return absl::AlreadyExistsError(absl::StrCat(path, " already exists; not overwriting it"));
  }
  SteadyTime start = std::chrono::steady_clock::now();
  MaterializeStats stats;
  std::string partial = path + ".partial";
  ::unlink(partial.c_str());
  auto cleanup = absl::MakeCleanup([&] { ::unlink(partial.c_str()); });
  Status written = format == ImageFormat::kRaw
                       ? WriteSparseRaw(repo, point_id, volume, partial, mode, progress, &stats)
                       : WriteQcow2(repo, point_id, volume, partial, mode, progress, &stats);
  if (!written.ok()) {
    return Annotate(written, absl::StrCat("volume '", volume, "' of recovery point ", point_id));
  }
  if (::rename(partial.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, "rename " + partial + " to " + path);
  }
  stats.millis = MillisSince(start);
  return stats;
}

StatusOr<FileDigest> HashFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, "open " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sha256 unavailable");
  }
  FileDigest result;
  std::vector<char> buffer(4u << 20);
  while (true) {
    ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read " + path);
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(n));
    result.size += static_cast<uint64_t>(n);
  }
  repo::Digest digest{};
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest.data(), &length);
  result.sha256 = repo::DigestHex(digest);
  return result;
}

}  // namespace sp::restore
