// Test helper: sets the process umask for a scope. Tests of file modes run under umask 0 so that
// they prove the code sets the modes itself rather than relying on the usual umask.
#pragma once

#include <sys/stat.h>

namespace sp::testing {

class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : saved_(::umask(mask)) {}
  ~ScopedUmask() { ::umask(saved_); }
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;

 private:
  mode_t saved_;
};

// Permission bits of `path` (without following a final symlink), or ~0u when it is missing.
inline unsigned ModeOf(const char* path) {
  struct stat info {};
  return ::lstat(path, &info) == 0 ? static_cast<unsigned>(info.st_mode & 07777) : ~0u;
}

}  // namespace sp::testing
