#include "platform/fd.h"

#include <unistd.h>

#include <cerrno>

#include "platform/check.h"

namespace sp {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) Reset(other.Release());
  return *this;
}

int UniqueFd::Release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void UniqueFd::Reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Status UniqueFd::Close(absl::string_view what) {
  SP_CHECK(valid());
  // Linux releases the descriptor even when close fails (also on EINTR): never retry.
  if (::close(Release()) != 0) return ErrnoStatus(errno, absl::StrCat("close ", what));
  return absl::OkStatus();
}

Status WriteAllAt(int fd, absl::string_view data, uint64_t offset, absl::string_view what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n =
        ::pwrite(fd, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("write ", what));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace sp
