// Owned file descriptors and the few plain-file operations on them that loop until done.
#pragma once

#include <cstdint>

#include "absl/strings/string_view.h"
#include "platform/status.h"

namespace sp {

// An owned file descriptor, closed on destruction (errors ignored: use Close to see them).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release();
  void Reset(int fd = -1);
  // Closes the descriptor and reports close's error (a written file's last chance to say that
  // its data did not make it), naming `what`. The descriptor is gone either way.
  // REQUIRES: valid().
  Status Close(absl::string_view what);

 private:
  int fd_ = -1;
};

// Writes all of `data` at `offset` of the file `fd` (pwrite, retried on EINTR and short writes).
// Errors name `what`; ResourceExhausted when the device is full.
Status WriteAllAt(int fd, absl::string_view data, uint64_t offset, absl::string_view what);

}  // namespace sp
