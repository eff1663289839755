// FileSystem: the one seam through which the repository touches durable storage.
//
// Three implementations:
//   PosixFileSystem            the real thing (files, fsync, rename, flock).
//   MemFileSystem              in memory, with a crash model: data not yet fsync'ed and directory
//                              entries not yet made durable by SyncDir are lost by
//                              DropUnsyncedData() — a power cut.
//   FaultInjectionFileSystem   forwards to another FileSystem and fails chosen operations
//                              (ENOSPC on append, EIO on read, "everything fails after N mutating
//                              operations" to stop a writer at any step of its work).
//
// Durable writes follow: write temp → Sync → Rename → SyncDir of the parent directory
// (WriteFileDurably does exactly that).
//
// Paths are plain strings joined with '/'. All methods are thread-safe unless stated.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "platform/status.h"

namespace sp {

// A file opened for appending. Not thread-safe: one user at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Appends all of `data`. ResourceExhausted when the device is full.
  virtual Status Append(absl::string_view data) = 0;
  // Makes everything appended so far durable (fsync).
  virtual Status Sync() = 0;
  // Closes the file; idempotent. Data not synced may still be lost by a power cut.
  virtual Status Close() = 0;
};

// A file opened for positional reads. Thread-safe.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `size` bytes at `offset` into `buffer`; returns the count (short only at end of
  // file). An I/O error is returned as DataLoss/Unknown carrying the path.
  virtual StatusOr<size_t> Read(uint64_t offset, size_t size, char* buffer) const = 0;
  virtual StatusOr<uint64_t> Size() const = 0;
};

// An advisory lock held until destroyed (released also when the process dies).
class FileLock {
 public:
  virtual ~FileLock() = default;
};

// What the FileSystem knows about a path.
struct FileInfo {
  uint64_t size = 0;
  int64_t modified_micros = 0;  // on the file system's own clock
  bool is_directory = false;
  uint32_t mode = 0;  // permission bits (e.g. 0600)
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Creates (or truncates) `path` for writing, readable and writable by the owner only (0600):
  // recovery points hold everything the guests hold. The caller owns the result.
  virtual StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) = 0;
  // Opens an existing file for reading. NotFound when it does not exist.
  virtual StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;

  // Atomically replaces `to` with `from`.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // Atomically renames `from` to `to` unless `to` exists: AlreadyExists then, and nothing
  // changes.
  virtual Status RenameNoReplace(const std::string& from, const std::string& to) = 0;
  // Removes a file. NotFound when it does not exist.
  virtual Status DeleteFile(const std::string& path) = 0;
  // Creates one directory for the owner only (0700); OK when it already exists.
  virtual Status CreateDir(const std::string& path) = 0;
  // Removes an empty directory.
  virtual Status DeleteDir(const std::string& path) = 0;
  // Makes the entries (creates, renames, deletes) of directory `path` durable.
  virtual Status SyncDir(const std::string& path) = 0;
  // Makes every file's data and every directory entry of the file system holding `path`
  // durable at once (syncfs(2)): one flush for a batch of files instead of one fsync each.
  virtual Status SyncFileSystem(const std::string& path) = 0;
  // Names (not paths) of the entries of directory `path`, without "." and "..". NotFound when
  // the directory does not exist.
  virtual StatusOr<std::vector<std::string>> ListDir(const std::string& path) = 0;
  // Size, modification time and type of `path`. NotFound when it does not exist.
  virtual StatusOr<FileInfo> Stat(const std::string& path) = 0;
  // Sets the modification time of `path` to now. NotFound when it does not exist.
  virtual Status Touch(const std::string& path) = 0;
  // Takes an exclusive advisory lock on `path` (created when missing) without waiting.
  // FailedPrecondition when someone else holds it. The lock dies with the returned object.
  virtual StatusOr<std::unique_ptr<FileLock>> TryLock(const std::string& path) = 0;
  // The file system's clock, in microseconds since the epoch (the clock of modified_micros).
  virtual int64_t NowMicros() = 0;

  // Helpers built on the primitives above.
  bool Exists(const std::string& path);
  // The whole file.
  StatusOr<std::string> ReadWholeFile(const std::string& path);
  // temp file → Sync → Rename → SyncDir: after OK the file is durable under `path`; after an
  // error or a crash `path` is either absent or the complete old/new contents.
  Status WriteFileDurably(const std::string& path, absl::string_view contents);
  // The same for a new file: never replaces one. AlreadyExists when `path` exists (and nothing
  // changes); after any other error or a crash `path` is absent or complete, never partial.
  Status CreateFileDurably(const std::string& path, absl::string_view contents);
  // Removes `path` and everything below it. OK when it does not exist.
  Status DeleteTree(const std::string& path);
  // Creates `path` and its missing parents.
  Status CreateDirs(const std::string& path);

  // The process-wide POSIX file system. Never null, never destroyed.
  static FileSystem* Posix();
};

// Joins path components with '/'.
std::string JoinPath(absl::string_view a, absl::string_view b);
// The directory part of `path` ("." when none).
std::string DirName(absl::string_view path);

// An in-memory file system for tests, with a power-cut model (see the top of this file).
// Directories are durable as soon as they are created (only their entries need SyncDir).
class MemFileSystem : public FileSystem {
 public:
  MemFileSystem();
  ~MemFileSystem() override;

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status RenameNoReplace(const std::string& from, const std::string& to) override;
  Status DeleteFile(const std::string& path) override;
  Status CreateDir(const std::string& path) override;
  Status DeleteDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status SyncFileSystem(const std::string& path) override;
  StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  StatusOr<FileInfo> Stat(const std::string& path) override;
  Status Touch(const std::string& path) override;
  StatusOr<std::unique_ptr<FileLock>> TryLock(const std::string& path) override;
  int64_t NowMicros() override;

  // The power cut: forgets every directory entry change not made durable by SyncDir and every
  // byte appended after a file's last Sync. Locks are released by their owners, as on a reboot.
  void DropUnsyncedData();
  // Overwrites one byte of an existing file in place (durably): simulated bit rot.
  Status CorruptByte(const std::string& path, uint64_t offset);

  struct Inode;
  struct Dir;
  struct State;

 private:
  std::shared_ptr<State> state_;
};

// Which operation a fault applies to.
enum class FsOp {
  kNewWritableFile,
  kAppend,
  kSync,
  kClose,
  kNewRandomAccessFile,
  kRead,
  kRename,  // Rename and RenameNoReplace
  kDeleteFile,
  kCreateDir,
  kDeleteDir,
  kSyncDir,
  kSyncFileSystem,
  kListDir,
  kStat,
  kTouch,
  kTryLock
};

// Forwards to `base` (not owned; must outlive this) and injects failures.
class FaultInjectionFileSystem : public FileSystem {
 public:
  explicit FaultInjectionFileSystem(FileSystem* base);
  ~FaultInjectionFileSystem() override;

  // Makes operations of kind `op` on paths containing `path_substring` ("" = any) fail with
  // `error`: the next `count` of them (-1 = all from now on), after skipping `skip` of them.
  void InjectError(FsOp op, Status error, absl::string_view path_substring = "", int skip = 0,
                   int count = -1);
  // After `count` more mutating operations (create, append, sync, rename, delete, mkdir,
  // dir sync, touch) succeed, every later operation fails with Unavailable ("power cut").
  // -1 disables.
  void FailAfterMutations(int64_t count);
  // Mutating operations that went through so far.
  int64_t mutations() const;
  void ClearFaults();

  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override;
  StatusOr<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status RenameNoReplace(const std::string& from, const std::string& to) override;
  Status DeleteFile(const std::string& path) override;
  Status CreateDir(const std::string& path) override;
  Status DeleteDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status SyncFileSystem(const std::string& path) override;
  StatusOr<std::vector<std::string>> ListDir(const std::string& path) override;
  StatusOr<FileInfo> Stat(const std::string& path) override;
  Status Touch(const std::string& path) override;
  StatusOr<std::unique_ptr<FileLock>> TryLock(const std::string& path) override;
  int64_t NowMicros() override;

  // The check every forwarded operation makes first. Public for the wrapped file objects.
  Status Check(FsOp op, const std::string& path);

 private:
  struct Rule {
    FsOp op;
    Status error;
    std::string path_substring;
    int skip;
    int count;
  };
  FileSystem* const base_;
  mutable absl::Mutex mutex_;
  std::vector<Rule> rules_ ABSL_GUARDED_BY(mutex_);
  int64_t mutations_ ABSL_GUARDED_BY(mutex_) = 0;
  int64_t mutations_left_ ABSL_GUARDED_BY(mutex_) = -1;  // -1 = unlimited
};

}  // namespace sp
