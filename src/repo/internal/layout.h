// Names of the files and directories inside a repository (docs/repository-format.md).
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace sp::repo::internal {

inline constexpr char kConfigFile[] = "config";
inline constexpr char kChunksDir[] = "chunks";
inline constexpr char kPointsDir[] = "points";
inline constexpr char kPendingDir[] = "pending";
inline constexpr char kLocksDir[] = "locks";
inline constexpr char kGcDir[] = "gc";
inline constexpr char kTrashDir[] = "gc/trash";
inline constexpr char kGcMarker[] = "gc/started";
inline constexpr char kGcLock[] = "locks/gc.lock";
inline constexpr char kManifestFile[] = "manifest.json";

// The lock file that admits one writer per VM.
std::string VmLockName(absl::string_view vm_id);
// True for names the write path uses for files not yet renamed into place.
bool IsTempName(absl::string_view name);
// A new recovery point id: creation time (UTC) and 32 random bits, "20261122T033513Z-1a2b3c4d".
std::string NewPointId(int64_t unix_micros);
// True when `id` looks like a point id (so it can be used as a directory name).
bool IsPointId(absl::string_view id);

}  // namespace sp::repo::internal
