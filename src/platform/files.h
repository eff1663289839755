// Small file helpers for configuration and run-time state (pid files, run directories).
// Bulk, durable data goes through the repository's FileSystem instead.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "platform/status.h"

namespace sp {

// Everything stillpoint creates holds what the guests hold: by default only its owner may read it.
inline constexpr unsigned kOwnerFileMode = 0600;
inline constexpr unsigned kOwnerDirMode = 0700;

// Whole file as a string. NotFound when it does not exist.
StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` atomically (temp file, fsync, rename, fsync of the directory).
// The file gets exactly `mode`, whatever the umask.
Status WriteFileAtomic(const std::string& path, absl::string_view contents,
                       unsigned mode = kOwnerFileMode);

// Creates `path` and its missing parents, each with exactly `mode` (whatever the umask).
// Directories that exist already keep their mode. OK when `path` is a directory already.
Status MakeDirs(const std::string& path, unsigned mode = kOwnerDirMode);

// Creates the new, empty file `path` with exactly `mode` (whatever the umask) and returns its
// descriptor, which the caller owns. AlreadyExists when `path` exists.
StatusOr<int> CreateNewFile(const std::string& path, unsigned mode = kOwnerFileMode);

// The mode for directories holding files of `file_mode`: every class that may read the files may
// also enter the directory (0640 → 0750). Never less than the owner's rwx.
unsigned DirModeFor(unsigned file_mode);

// FailedPrecondition naming `what` at `path` and the chmod that fixes it when `mode` lets group or
// others write: whoever can write a repository or its key can change or destroy recovery points.
Status RefuseWritableByOthers(const std::string& path, unsigned mode, absl::string_view what);

// Removes `path` and everything below it. OK when it does not exist.
Status RemoveTree(const std::string& path);

bool PathExists(const std::string& path);
bool IsRegularFile(const std::string& path);

// Size in bytes of the file at `path`.
StatusOr<uint64_t> FileSize(const std::string& path);

// `path` made absolute against the current directory (no symlink resolution).
std::string AbsolutePath(const std::string& path);

}  // namespace sp
