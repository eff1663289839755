// Benchmark driver for the repository's write and read paths on a raw image file.
//
//   repo_ingest ingest REPO IMAGE VM_NAME [VOLUME]   prints the new recovery point's id
//   repo_ingest restore REPO POINT VOLUME OUT        writes the volume to OUT (sparse)
//
// Ingest skips the image's holes (SEEK_DATA/SEEK_HOLE) as the capture skips unallocated extents.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "platform/clock.h"
#include "platform/unix_socket.h"
#include "repo/repository.h"
#include "repo/units.h"

namespace sp::repo {
namespace {

// True when [offset, offset + length) of `fd` lies entirely in a hole.
bool IsHole(int fd, uint64_t offset, uint64_t length) {
  off_t data = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (data < 0) return errno == ENXIO;  // no data after offset
  return static_cast<uint64_t>(data) >= offset + length;
}

Status ReadFully(int fd, uint64_t offset, std::string* buffer) {
  size_t done = 0;
  while (done < buffer->size()) {
    ssize_t count = ::pread(fd, buffer->data() + done, buffer->size() - done,
                            static_cast<off_t>(offset + done));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) return ErrnoStatus(count < 0 ? errno : EIO, "read image");
    done += static_cast<size_t>(count);
  }
  return absl::OkStatus();
}

Status Ingest(const std::string& repo_path, const std::string& image, const std::string& vm,
              const std::string& volume_name) {
  SP_ASSIGN_OR_RETURN(auto repo, Repository::Open(repo_path, OpenOptions{}));
  UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", image));
  off_t end = ::lseek(fd.get(), 0, SEEK_END);
  if (end < 0) return ErrnoStatus(errno, "size of image");
  auto size = static_cast<uint64_t>(end);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  RecoveryPointRequest request;
  request.vm = VmIdentity{"bench-" + vm, vm};
  SteadyTime start = std::chrono::steady_clock::now();
  SP_ASSIGN_OR_RETURN(auto writer, repo->BeginRecoveryPoint(request));
  SP_ASSIGN_OR_RETURN(VolumeWriter * volume, writer->AddVolume(volume_name, size));
  uint64_t chunk = repo->config().chunk_size;
  for (uint64_t i = 0; i < volume->chunk_count(); ++i) {
    uint64_t length = std::min(chunk, size - i * chunk);
    if (IsHole(fd.get(), i * chunk, length)) {
      SP_RETURN_IF_ERROR(volume->PutZero(i));
      continue;
    }
    std::string data(length, '\0');
    SP_RETURN_IF_ERROR(ReadFully(fd.get(), i * chunk, &data));
    SP_RETURN_IF_ERROR(volume->PutChunk(i, std::move(data)));
  }
  PointDescription description;
  description.consistency = PointConsistency::kCrash;
  description.reason = "benchmark";
  SP_ASSIGN_OR_RETURN(Manifest manifest, writer->Commit(description));
  const std::string& id = manifest.id;
  WriteStats stats = writer->stats();
  double seconds = MillisSince(start) / 1000;
  std::fprintf(
      stderr, "ingest: %s in %.1f s; new chunks %llu (%s stored), reused %llu, zero %llu\n",
      FormatBytes(size).c_str(), seconds, static_cast<unsigned long long>(stats.new_chunks),
      FormatBytes(stats.stored_bytes).c_str(), static_cast<unsigned long long>(stats.reused_chunks),
      static_cast<unsigned long long>(stats.zero_chunks));
  std::printf("%s\n", id.c_str());
  return absl::OkStatus();
}

Status Restore(const std::string& repo_path, const std::string& point, const std::string& volume,
               const std::string& out) {
  SP_ASSIGN_OR_RETURN(auto repo, Repository::Open(repo_path, OpenOptions{}));
  SP_ASSIGN_OR_RETURN(auto reader, repo->OpenVolume(point, volume));
  SP_ASSIGN_OR_RETURN(auto stream, repo->OpenStream(point, volume));
  UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", out));
  if (::ftruncate(fd.get(), static_cast<off_t>(reader->size())) != 0) {
    return ErrnoStatus(errno, "size output");
  }
  std::string data;
  for (uint64_t i = 0;; ++i) {
    bool zero = false;
    SP_ASSIGN_OR_RETURN(bool more, stream->Next(&data, &zero));
    if (!more) break;
    if (zero) continue;  // leave a hole
    uint64_t offset = i * reader->chunk_size();
    for (size_t done = 0; done < data.size();) {
      ssize_t count = ::pwrite(fd.get(), data.data() + done, data.size() - done,
                               static_cast<off_t>(offset + done));
      if (count < 0) return ErrnoStatus(errno, "write output");
      done += static_cast<size_t>(count);
    }
  }
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync output");
  return absl::OkStatus();
}

}  // namespace
}  // namespace sp::repo

int main(int argc, char** argv) {
  std::string command = argc > 1 ? argv[1] : "";
  sp::Status status;
  if (command == "ingest" && (argc == 5 || argc == 6)) {
    status = sp::repo::Ingest(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : "vda");
  } else if (command == "restore" && argc == 6) {
    status = sp::repo::Restore(argv[2], argv[3], argv[4], argv[5]);
  } else {
    std::fprintf(stderr,
                 "usage: repo_ingest ingest REPO IMAGE VM [VOLUME]\n"
                 "       repo_ingest restore REPO POINT VOLUME OUT\n");
    return 2;
  }
  if (!status.ok()) {
    std::fprintf(stderr, "repo_ingest: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
