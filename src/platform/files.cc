#include "platform/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "platform/unix_socket.h"

namespace sp {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("read ", path, " failed"));
  return contents.str();
}

Status WriteFileAtomic(const std::string& path, absl::string_view contents, unsigned mode) {
  std::string temp = absl::StrCat(path, ".tmp.", ::getpid());
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kOwnerFileMode));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", temp));
  // The temp may be left by a killed writer with another mode: set it before any data goes in.
  if (::fchmod(fd.get(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", temp));
  auto remove_temp = absl::MakeCleanup([&] { ::unlink(temp.c_str()); });
  while (!contents.empty()) {
    ssize_t count = ::write(fd.get(), contents.data(), contents.size());
    if (count < 0 && errno == EINTR) continue;
    if (count < 0) return ErrnoStatus(errno, absl::StrCat("write ", temp));
    contents.remove_prefix(static_cast<size_t>(count));
  }
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", temp));
  fd.Reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", temp, " to ", path));
  }
  std::move(remove_temp).Cancel();
  std::string dir = std::filesystem::path(path).parent_path().string();
  UniqueFd dir_fd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.valid()) ::fsync(dir_fd.get());
  return absl::OkStatus();
}

Status MakeDirs(const std::string& path, unsigned mode) {
  std::filesystem::path target(path);
  std::filesystem::path partial;
  for (const auto& component : target) {
    partial /= component;
    if (::mkdir(partial.c_str(), kOwnerDirMode) == 0) {
      // mkdir's mode passes through the umask; the caller's mode must hold as given.
      if (::chmod(partial.c_str(), mode) != 0) {
        return ErrnoStatus(errno, absl::StrCat("chmod ", partial.string()));
      }
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("create directory ", partial.string()));
    }
  }
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

StatusOr<int> CreateNewFile(const std::string& path, unsigned mode) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kOwnerFileMode));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", path));
  if (::fchmod(fd.get(), mode) != 0) return ErrnoStatus(errno, absl::StrCat("chmod ", path));
  return fd.Release();
}

unsigned DirModeFor(unsigned file_mode) {
  unsigned mode = (file_mode & 0777u) | kOwnerDirMode;
  if (mode & 0040u) mode |= 0010u;
  if (mode & 0004u) mode |= 0001u;
  return mode;
}

Status RefuseWritableByOthers(const std::string& path, unsigned mode, absl::string_view what) {
  if ((mode & 0022u) == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "%s %s is writable by %s (mode %04o): whoever can write it can change or destroy recovery "
      "points; run `chmod go-w %s` if that is not intended",
      what, path,
      (mode & 0020u) && (mode & 0002u) ? "group and others"
      : (mode & 0020u)                 ? "its group"
                                       : "others",
      mode & 07777u, path));
}

Status RemoveTree(const std::string& path) {
  std::error_code error;
  std::filesystem::remove_all(path, error);
  if (error) return ErrnoStatus(error.value(), absl::StrCat("remove ", path));
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat info {};
  return ::lstat(path.c_str(), &info) == 0;
}

bool IsRegularFile(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

StatusOr<uint64_t> FileSize(const std::string& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  return static_cast<uint64_t>(info.st_size);
}

std::string AbsolutePath(const std::string& path) {
  std::error_code error;
  auto absolute = std::filesystem::absolute(path, error);
  return error ? path : absolute.lexically_normal().string();
}

}  // namespace sp
