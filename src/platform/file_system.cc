#include "platform/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_format.h"
#include "platform/files.h"
#include "platform/unix_socket.h"

namespace sp {

std::string JoinPath(absl::string_view a, absl::string_view b) {
  if (a.empty()) return std::string(b);
  if (a.back() == '/') return absl::StrCat(a, b);
  return absl::StrCat(a, "/", b);
}

std::string DirName(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

bool FileSystem::Exists(const std::string& path) { return Stat(path).ok(); }

StatusOr<std::string> FileSystem::ReadWholeFile(const std::string& path) {
  SP_ASSIGN_OR_RETURN(auto file, NewRandomAccessFile(path));
  SP_ASSIGN_OR_RETURN(uint64_t size, file->Size());
  std::string contents(size, '\0');
  SP_ASSIGN_OR_RETURN(size_t got, file->Read(0, contents.size(), contents.data()));
  if (got != size) return absl::DataLossError(absl::StrCat("short read of ", path));
  return contents;
}

Status FileSystem::WriteFileDurably(const std::string& path, absl::string_view contents) {
  static std::atomic<uint64_t> counter{0};
  std::string temp = absl::StrFormat("%s.tmp.%d.%d", path, ::getpid(), counter.fetch_add(1));
  auto remove_temp = absl::MakeCleanup([&] { DeleteFile(temp).IgnoreError(); });
  {
    SP_ASSIGN_OR_RETURN(auto file, NewWritableFile(temp));
    SP_RETURN_IF_ERROR(file->Append(contents));
    SP_RETURN_IF_ERROR(file->Sync());
    SP_RETURN_IF_ERROR(file->Close());
  }
  SP_RETURN_IF_ERROR(Rename(temp, path));
  std::move(remove_temp).Cancel();
  return SyncDir(DirName(path));
}

Status FileSystem::CreateFileDurably(const std::string& path, absl::string_view contents) {
  static std::atomic<uint64_t> counter{0};
  std::string temp = absl::StrFormat("%s.tmp.%d.%d", path, ::getpid(), counter.fetch_add(1));
  auto remove_temp = absl::MakeCleanup([&] { DeleteFile(temp).IgnoreError(); });
  {
    SP_ASSIGN_OR_RETURN(auto file, NewWritableFile(temp));
    SP_RETURN_IF_ERROR(file->Append(contents));
    SP_RETURN_IF_ERROR(file->Sync());
    SP_RETURN_IF_ERROR(file->Close());
  }
  SP_RETURN_IF_ERROR(RenameNoReplace(temp, path));
  std::move(remove_temp).Cancel();
  return SyncDir(DirName(path));
}

Status FileSystem::DeleteTree(const std::string& path) {
  auto info = Stat(path);
  if (absl::IsNotFound(info.status())) return absl::OkStatus();
  SP_RETURN_IF_ERROR(info.status());
  if (!info->is_directory) return DeleteFile(path);
  SP_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(path));
  for (const std::string& name : names) SP_RETURN_IF_ERROR(DeleteTree(JoinPath(path, name)));
  return DeleteDir(path);
}

Status FileSystem::CreateDirs(const std::string& path) {
  if (path.empty() || path == "/" || path == ".") return absl::OkStatus();
  auto info = Stat(path);
  if (info.ok() && info->is_directory) return absl::OkStatus();
  SP_RETURN_IF_ERROR(CreateDirs(DirName(path)));
  return CreateDir(path);
}

// ---------------------------------------------------------------------------------------------
// POSIX

namespace {

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  Status Append(absl::string_view data) override {
    while (!data.empty()) {
      ssize_t count = ::write(fd_.get(), data.data(), data.size());
      if (count < 0 && errno == EINTR) continue;
      if (count < 0) return ErrnoStatus(errno, absl::StrCat("write ", path_));
      data.remove_prefix(static_cast<size_t>(count));
    }
    return absl::OkStatus();
  }
  Status Sync() override {
    if (::fdatasync(fd_.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", path_));
    return absl::OkStatus();
  }
  Status Close() override {
    if (fd_.valid() && ::close(fd_.Release()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("close ", path_));
    }
    return absl::OkStatus();
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  StatusOr<size_t> Read(uint64_t offset, size_t size, char* buffer) const override {
    size_t done = 0;
    while (done < size) {
      ssize_t count =
          ::pread(fd_.get(), buffer + done, size - done, static_cast<off_t>(offset + done));
      if (count < 0 && errno == EINTR) continue;
      if (count < 0) return ErrnoStatus(errno, absl::StrCat("read ", path_));
      if (count == 0) break;
      done += static_cast<size_t>(count);
    }
    return done;
  }
  StatusOr<uint64_t> Size() const override {
    struct stat info {};
    if (::fstat(fd_.get(), &info) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path_));
    return static_cast<uint64_t>(info.st_size);
  }

 private:
  std::string path_;
  UniqueFd fd_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}

 private:
  UniqueFd fd_;  // closing the descriptor releases the flock
};

int64_t TimespecMicros(const struct timespec& time) {
  return static_cast<int64_t>(time.tv_sec) * 1000000 + time.tv_nsec / 1000;
}

class PosixFileSystem final : public FileSystem {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kOwnerFileMode);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("create ", path));
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }
  StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", path));
    return std::unique_ptr<RandomAccessFile>(new PosixRandomAccessFile(path, fd));
  }
  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("rename ", from, " to ", to));
    }
    return absl::OkStatus();
  }
  Status RenameNoReplace(const std::string& from, const std::string& to) override {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
      return absl::OkStatus();
    }
    int error = errno;
    if (error == EINVAL || error == ENOSYS) {
      // A file system without RENAME_NOREPLACE (e.g. older NFS): a hard link fails just the same
      // when `to` exists. (Files only; that is what this is used for there.)
      if (::link(from.c_str(), to.c_str()) == 0) {
        ::unlink(from.c_str());
        return absl::OkStatus();
      }
      error = errno;
    }
    return ErrnoStatus(error, absl::StrCat("rename ", from, " to ", to));
  }
  Status DeleteFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoStatus(errno, absl::StrCat("remove ", path));
    return absl::OkStatus();
  }
  Status CreateDir(const std::string& path) override {
    if (::mkdir(path.c_str(), kOwnerDirMode) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("create directory ", path));
    }
    return absl::OkStatus();
  }
  Status DeleteDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("remove directory ", path));
    }
    return absl::OkStatus();
  }
  Status SyncDir(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open directory ", path));
    if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, absl::StrCat("fsync ", path));
    return absl::OkStatus();
  }
  Status SyncFileSystem(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
    if (::syncfs(fd.get()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("sync the file system of ", path));
    }
    return absl::OkStatus();
  }
  StatusOr<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return ErrnoStatus(errno, absl::StrCat("list ", path));
    auto close_dir = absl::MakeCleanup([dir] { ::closedir(dir); });
    std::vector<std::string> names;
    // readdir is safe on a stream that only this call uses (readdir_r is deprecated).
    while (struct dirent* entry = ::readdir(dir)) {  // NOLINT(concurrency-mt-unsafe)
      absl::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    return names;
  }
  StatusOr<FileInfo> Stat(const std::string& path) override {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
    return FileInfo{static_cast<uint64_t>(info.st_size), TimespecMicros(info.st_mtim),
                    S_ISDIR(info.st_mode), info.st_mode & 07777u};
  }
  Status Touch(const std::string& path) override {
    if (::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) != 0) {
      return ErrnoStatus(errno, absl::StrCat("touch ", path));
    }
    return absl::OkStatus();
  }
  StatusOr<std::unique_ptr<FileLock>> TryLock(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kOwnerFileMode);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open lock ", path));
    UniqueFd owned(fd);
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return absl::FailedPreconditionError(absl::StrCat(path, " is locked by another process"));
      }
      return ErrnoStatus(errno, absl::StrCat("lock ", path));
    }
    return std::unique_ptr<FileLock>(new PosixFileLock(owned.Release()));
  }
  int64_t NowMicros() override {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return TimespecMicros(now);
  }
};

}  // namespace

FileSystem* FileSystem::Posix() {
  static FileSystem* const posix = new PosixFileSystem();
  return posix;
}

// ---------------------------------------------------------------------------------------------
// In memory

struct MemFileSystem::Inode {
  std::string data;
  size_t synced = 0;
  int64_t modified = 0;
};

struct MemFileSystem::Dir {
  std::map<std::string, std::shared_ptr<Inode>> live;
  std::map<std::string, std::shared_ptr<Inode>> durable;
};

// One lock for the whole tree; the inodes it reaches (shared with open files) are guarded by it
// too, which the annotations cannot express across objects.
struct MemFileSystem::State {
  absl::Mutex mutex;
  std::map<std::string, Dir> dirs ABSL_GUARDED_BY(mutex);  // by normalized path
  std::set<std::string> locked ABSL_GUARDED_BY(mutex);
  int64_t clock ABSL_GUARDED_BY(mutex) = 1'000'000;  // advances on every mutation

  int64_t Tick() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex) { return ++clock; }
};

namespace {

std::string Normalize(absl::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

namespace {

class MemWritableFile final : public WritableFile {
 public:
  MemWritableFile(std::shared_ptr<MemFileSystem::State> state,
                  std::shared_ptr<MemFileSystem::Inode> inode)
      : state_(std::move(state)), inode_(std::move(inode)) {}
  Status Append(absl::string_view data) override {
    absl::MutexLock lock(&state_->mutex);
    inode_->data.append(data.data(), data.size());
    inode_->modified = state_->Tick();
    return absl::OkStatus();
  }
  Status Sync() override {
    absl::MutexLock lock(&state_->mutex);
    inode_->synced = inode_->data.size();
    return absl::OkStatus();
  }
  Status Close() override { return absl::OkStatus(); }

 private:
  std::shared_ptr<MemFileSystem::State> state_;
  std::shared_ptr<MemFileSystem::Inode> inode_;
};

class MemRandomAccessFile final : public RandomAccessFile {
 public:
  MemRandomAccessFile(std::shared_ptr<MemFileSystem::State> state,
                      std::shared_ptr<MemFileSystem::Inode> inode)
      : state_(std::move(state)), inode_(std::move(inode)) {}
  StatusOr<size_t> Read(uint64_t offset, size_t size, char* buffer) const override {
    absl::MutexLock lock(&state_->mutex);
    if (offset >= inode_->data.size()) return size_t{0};
    size_t count = std::min<size_t>(size, inode_->data.size() - offset);
    std::copy_n(inode_->data.data() + offset, count, buffer);
    return count;
  }
  StatusOr<uint64_t> Size() const override {
    absl::MutexLock lock(&state_->mutex);
    return uint64_t{inode_->data.size()};
  }

 private:
  std::shared_ptr<MemFileSystem::State> state_;
  std::shared_ptr<MemFileSystem::Inode> inode_;
};

class MemFileLock final : public FileLock {
 public:
  MemFileLock(std::function<void()> release) : release_(std::move(release)) {}
  ~MemFileLock() override { release_(); }

 private:
  std::function<void()> release_;
};

}  // namespace

MemFileSystem::MemFileSystem() : state_(std::make_shared<State>()) { state_->dirs["/"]; }
MemFileSystem::~MemFileSystem() = default;

#define SP_MEM_FIND_DIR_(dir_var, path_string)                                    \
  auto dir_it_##dir_var = state_->dirs.find(DirName(path_string));                \
  if (dir_it_##dir_var == state_->dirs.end()) {                                   \
    return absl::NotFoundError(absl::StrCat(path_string, ": no such directory")); \
  }                                                                               \
  Dir& dir_var = dir_it_##dir_var->second

StatusOr<std::unique_ptr<WritableFile>> MemFileSystem::NewWritableFile(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(dir, path);
  if (state_->dirs.count(path) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is a directory"));
  }
  auto inode = std::make_shared<Inode>();
  inode->modified = state_->Tick();
  dir.live[BaseName(path)] = inode;
  return std::unique_ptr<WritableFile>(new MemWritableFile(state_, inode));
}

StatusOr<std::unique_ptr<RandomAccessFile>> MemFileSystem::NewRandomAccessFile(
    const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(dir, path);
  auto it = dir.live.find(BaseName(path));
  if (it == dir.live.end()) return absl::NotFoundError(absl::StrCat("open ", path));
  return std::unique_ptr<RandomAccessFile>(new MemRandomAccessFile(state_, it->second));
}

Status MemFileSystem::Rename(const std::string& raw_from, const std::string& raw_to) {
  std::string from = Normalize(raw_from), to = Normalize(raw_to);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(from_dir, from);
  SP_MEM_FIND_DIR_(to_dir, to);
  auto it = from_dir.live.find(BaseName(from));
  if (it == from_dir.live.end()) return absl::NotFoundError(absl::StrCat("rename ", from));
  auto inode = it->second;
  from_dir.live.erase(it);
  to_dir.live[BaseName(to)] = inode;
  state_->Tick();
  return absl::OkStatus();
}

Status MemFileSystem::RenameNoReplace(const std::string& raw_from, const std::string& raw_to) {
  std::string from = Normalize(raw_from), to = Normalize(raw_to);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(from_dir, from);
  SP_MEM_FIND_DIR_(to_dir, to);
  if (to_dir.live.count(BaseName(to)) != 0 || state_->dirs.count(to) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("rename ", from, " to ", to, ": File exists"));
  }
  auto it = from_dir.live.find(BaseName(from));
  if (it == from_dir.live.end()) return absl::NotFoundError(absl::StrCat("rename ", from));
  auto inode = it->second;
  from_dir.live.erase(it);
  to_dir.live[BaseName(to)] = inode;
  state_->Tick();
  return absl::OkStatus();
}

Status MemFileSystem::DeleteFile(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(dir, path);
  if (dir.live.erase(BaseName(path)) == 0) {
    return absl::NotFoundError(absl::StrCat("remove ", path));
  }
  state_->Tick();
  return absl::OkStatus();
}

Status MemFileSystem::CreateDir(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  if (state_->dirs.count(path) != 0) return absl::OkStatus();
  SP_MEM_FIND_DIR_(parent, path);
  if (parent.live.count(BaseName(path)) != 0) {
    return absl::AlreadyExistsError(absl::StrCat(path, " exists and is a file"));
  }
  state_->dirs[path];
  state_->Tick();
  return absl::OkStatus();
}

Status MemFileSystem::DeleteDir(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  auto it = state_->dirs.find(path);
  if (it == state_->dirs.end()) return absl::NotFoundError(absl::StrCat("rmdir ", path));
  std::string prefix = path + "/";
  auto child = state_->dirs.lower_bound(prefix);
  bool has_subdir = child != state_->dirs.end() && child->first.rfind(prefix, 0) == 0;
  if (!it->second.live.empty() || has_subdir) {
    return absl::FailedPreconditionError(absl::StrCat("rmdir ", path, ": not empty"));
  }
  state_->dirs.erase(it);
  state_->Tick();
  return absl::OkStatus();
}

Status MemFileSystem::SyncDir(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  auto it = state_->dirs.find(path);
  if (it == state_->dirs.end()) return absl::NotFoundError(absl::StrCat("fsync ", path));
  it->second.durable = it->second.live;
  return absl::OkStatus();
}

Status MemFileSystem::SyncFileSystem(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  if (state_->dirs.count(path) == 0 && state_->dirs.count(DirName(path)) == 0) {
    return absl::NotFoundError(absl::StrCat("sync the file system of ", path));
  }
  for (auto& [dir_path, dir] : state_->dirs) {
    dir.durable = dir.live;
    for (auto& [name, inode] : dir.live) inode->synced = inode->data.size();
  }
  return absl::OkStatus();
}

StatusOr<std::vector<std::string>> MemFileSystem::ListDir(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  auto it = state_->dirs.find(path);
  if (it == state_->dirs.end()) return absl::NotFoundError(absl::StrCat("list ", path));
  std::vector<std::string> names;
  for (const auto& [name, inode] : it->second.live) names.push_back(name);
  std::string prefix = path == "/" ? "/" : path + "/";
  for (auto child = state_->dirs.lower_bound(prefix);
       child != state_->dirs.end() && child->first.rfind(prefix, 0) == 0; ++child) {
    if (child->first != path && DirName(child->first) == path) {
      names.push_back(BaseName(child->first));
    }
  }
  return names;
}

StatusOr<FileInfo> MemFileSystem::Stat(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  if (state_->dirs.count(path) != 0) return FileInfo{0, 0, true, kOwnerDirMode};
  SP_MEM_FIND_DIR_(dir, path);
  auto it = dir.live.find(BaseName(path));
  if (it == dir.live.end()) return absl::NotFoundError(absl::StrCat("stat ", path));
  return FileInfo{it->second->data.size(), it->second->modified, false, kOwnerFileMode};
}

Status MemFileSystem::Touch(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(dir, path);
  auto it = dir.live.find(BaseName(path));
  if (it == dir.live.end()) return absl::NotFoundError(absl::StrCat("touch ", path));
  it->second->modified = state_->Tick();
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<FileLock>> MemFileSystem::TryLock(const std::string& raw) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(dir, path);
  if (state_->locked.count(path) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is locked by another process"));
  }
  if (dir.live.count(BaseName(path)) == 0) {
    auto inode = std::make_shared<Inode>();
    inode->modified = state_->Tick();
    dir.live[BaseName(path)] = inode;
  }
  state_->locked.insert(path);
  std::shared_ptr<State> state = state_;
  return std::unique_ptr<FileLock>(new MemFileLock([state, path] {
    absl::MutexLock unlock(&state->mutex);
    state->locked.erase(path);
  }));
}

int64_t MemFileSystem::NowMicros() {
  absl::MutexLock lock(&state_->mutex);
  return state_->Tick();
}

void MemFileSystem::DropUnsyncedData() {
  absl::MutexLock lock(&state_->mutex);
  for (auto& [path, dir] : state_->dirs) {
    dir.live = dir.durable;
    for (auto& [name, inode] : dir.live) inode->data.resize(inode->synced);
  }
}

Status MemFileSystem::CorruptByte(const std::string& raw, uint64_t offset) {
  std::string path = Normalize(raw);
  absl::MutexLock lock(&state_->mutex);
  SP_MEM_FIND_DIR_(dir, path);
  auto it = dir.live.find(BaseName(path));
  if (it == dir.live.end()) return absl::NotFoundError(absl::StrCat("corrupt ", path));
  if (offset >= it->second->data.size()) return absl::OutOfRangeError("offset past the end");
  it->second->data[offset] = static_cast<char>(it->second->data[offset] ^ 0x5a);
  return absl::OkStatus();
}

#undef SP_MEM_FIND_DIR_

// ---------------------------------------------------------------------------------------------
// Fault injection

namespace {

bool IsMutation(FsOp op) {
  switch (op) {
    case FsOp::kNewWritableFile:
    case FsOp::kAppend:
    case FsOp::kSync:
    case FsOp::kRename:
    case FsOp::kDeleteFile:
    case FsOp::kCreateDir:
    case FsOp::kDeleteDir:
    case FsOp::kSyncDir:
    case FsOp::kSyncFileSystem:
    case FsOp::kTouch:
      return true;
    default:
      return false;
  }
}

class FaultWritableFile final : public WritableFile {
 public:
  FaultWritableFile(FaultInjectionFileSystem* fs, std::string path,
                    std::unique_ptr<WritableFile> base)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
  Status Append(absl::string_view data) override {
    SP_RETURN_IF_ERROR(fs_->Check(FsOp::kAppend, path_));
    return base_->Append(data);
  }
  Status Sync() override {
    SP_RETURN_IF_ERROR(fs_->Check(FsOp::kSync, path_));
    return base_->Sync();
  }
  Status Close() override {
    SP_RETURN_IF_ERROR(fs_->Check(FsOp::kClose, path_));
    return base_->Close();
  }

 private:
  FaultInjectionFileSystem* fs_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

class FaultRandomAccessFile final : public RandomAccessFile {
 public:
  FaultRandomAccessFile(FaultInjectionFileSystem* fs, std::string path,
                        std::unique_ptr<RandomAccessFile> base)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
  StatusOr<size_t> Read(uint64_t offset, size_t size, char* buffer) const override {
    SP_RETURN_IF_ERROR(fs_->Check(FsOp::kRead, path_));
    return base_->Read(offset, size, buffer);
  }
  StatusOr<uint64_t> Size() const override { return base_->Size(); }

 private:
  FaultInjectionFileSystem* fs_;
  std::string path_;
  std::unique_ptr<RandomAccessFile> base_;
};

}  // namespace

FaultInjectionFileSystem::FaultInjectionFileSystem(FileSystem* base) : base_(base) {}
FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

void FaultInjectionFileSystem::InjectError(FsOp op, Status error, absl::string_view path_substring,
                                           int skip, int count) {
  absl::MutexLock lock(&mutex_);
  rules_.push_back(Rule{op, std::move(error), std::string(path_substring), skip, count});
}

void FaultInjectionFileSystem::FailAfterMutations(int64_t count) {
  absl::MutexLock lock(&mutex_);
  mutations_left_ = count;
}

int64_t FaultInjectionFileSystem::mutations() const {
  absl::MutexLock lock(&mutex_);
  return mutations_;
}

void FaultInjectionFileSystem::ClearFaults() {
  absl::MutexLock lock(&mutex_);
  rules_.clear();
  mutations_left_ = -1;
}

Status FaultInjectionFileSystem::Check(FsOp op, const std::string& path) {
  absl::MutexLock lock(&mutex_);
  if (mutations_left_ == 0) {
    return absl::UnavailableError(absl::StrCat(path, ": injected power cut"));
  }
  for (Rule& rule : rules_) {
    if (rule.op != op || rule.count == 0) continue;
    if (path.find(rule.path_substring) == std::string::npos) continue;
    if (rule.skip > 0) {
      --rule.skip;
      continue;
    }
    if (rule.count > 0) --rule.count;
    return Annotate(rule.error, path);
  }
  if (IsMutation(op)) {
    ++mutations_;
    if (mutations_left_ > 0) --mutations_left_;
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<WritableFile>> FaultInjectionFileSystem::NewWritableFile(
    const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kNewWritableFile, path));
  SP_ASSIGN_OR_RETURN(auto file, base_->NewWritableFile(path));
  return std::unique_ptr<WritableFile>(new FaultWritableFile(this, path, std::move(file)));
}

StatusOr<std::unique_ptr<RandomAccessFile>> FaultInjectionFileSystem::NewRandomAccessFile(
    const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kNewRandomAccessFile, path));
  SP_ASSIGN_OR_RETURN(auto file, base_->NewRandomAccessFile(path));
  return std::unique_ptr<RandomAccessFile>(new FaultRandomAccessFile(this, path, std::move(file)));
}

Status FaultInjectionFileSystem::Rename(const std::string& from, const std::string& to) {
  SP_RETURN_IF_ERROR(Check(FsOp::kRename, from));
  return base_->Rename(from, to);
}
Status FaultInjectionFileSystem::RenameNoReplace(const std::string& from, const std::string& to) {
  SP_RETURN_IF_ERROR(Check(FsOp::kRename, from));
  return base_->RenameNoReplace(from, to);
}
Status FaultInjectionFileSystem::DeleteFile(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kDeleteFile, path));
  return base_->DeleteFile(path);
}
Status FaultInjectionFileSystem::CreateDir(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kCreateDir, path));
  return base_->CreateDir(path);
}
Status FaultInjectionFileSystem::DeleteDir(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kDeleteDir, path));
  return base_->DeleteDir(path);
}
Status FaultInjectionFileSystem::SyncDir(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kSyncDir, path));
  return base_->SyncDir(path);
}
Status FaultInjectionFileSystem::SyncFileSystem(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kSyncFileSystem, path));
  return base_->SyncFileSystem(path);
}
StatusOr<std::vector<std::string>> FaultInjectionFileSystem::ListDir(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kListDir, path));
  return base_->ListDir(path);
}
StatusOr<FileInfo> FaultInjectionFileSystem::Stat(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kStat, path));
  return base_->Stat(path);
}
Status FaultInjectionFileSystem::Touch(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kTouch, path));
  return base_->Touch(path);
}
StatusOr<std::unique_ptr<FileLock>> FaultInjectionFileSystem::TryLock(const std::string& path) {
  SP_RETURN_IF_ERROR(Check(FsOp::kTryLock, path));
  return base_->TryLock(path);
}
int64_t FaultInjectionFileSystem::NowMicros() { return base_->NowMicros(); }

}  // namespace sp
