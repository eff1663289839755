// Small file helpers for configuration and run-time state (pid files, run directories).
// Bulk, durable data goes through the repository's FileSystem instead.
#pragma once

#include <string>
#include "absl/strings/string_view.h"

#include "platform/status.h"

namespace sp {

// Whole file as a string. NotFound when it does not exist.
StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` atomically (temp file, fsync, rename, fsync of the directory).
Status WriteFileAtomic(const std::string& path, absl::string_view contents);

// Creates `path` and its missing parents with `mode`. OK when it already exists as a directory.
Status MakeDirs(const std::string& path, unsigned mode = 0755);

// Removes `path` and everything below it. OK when it does not exist.
Status RemoveTree(const std::string& path);

bool PathExists(const std::string& path);
bool IsRegularFile(const std::string& path);

// Size in bytes of the file at `path`.
StatusOr<uint64_t> FileSize(const std::string& path);

// `path` made absolute against the current directory (no symlink resolution).
std::string AbsolutePath(const std::string& path);

}  // namespace sp
