#include "platform/unix_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sp {
namespace {

StatusOr<sockaddr_un> MakeAddress(absl::string_view path) {
  SP_RETURN_IF_ERROR(CheckUnixSocketPath(path));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

StatusOr<UniqueFd> NewSocket() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return ErrnoStatus(errno, "socket");
  return UniqueFd(fd);
}

// Waits until `fd` is ready for `events`. DeadlineExceeded when the deadline passes first.
Status WaitFor(int fd, short events, Deadline deadline, absl::string_view what) {
  while (true) {
    pollfd entry{fd, events, 0};
    int ready = ::poll(&entry, 1, deadline.PollTimeoutMs());
    if (ready > 0) return absl::OkStatus();
    if (ready == 0) return absl::DeadlineExceededError(absl::StrCat(what, ": timed out"));
    if (errno != EINTR) return ErrnoStatus(errno, what);
  }
}

}  // namespace

Status CheckUnixSocketPath(absl::string_view path) {
  if (path.empty()) return absl::InvalidArgumentError("empty unix socket path");
  if (path.size() > kMaxUnixSocketPath) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unix socket path '", path, "' is ", path.size(), " bytes long; the limit is ",
        kMaxUnixSocketPath, ". Use a shorter directory (e.g. set STILLPOINT_RUN_DIR)"));
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<UnixConnection>> UnixConnection::Connect(absl::string_view path,
                                                                  Deadline deadline) {
  SP_ASSIGN_OR_RETURN(sockaddr_un address, MakeAddress(path));
  SP_ASSIGN_OR_RETURN(UniqueFd fd, NewSocket());
  std::string what = absl::StrCat("connect to ", path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) return ErrnoStatus(errno, what);
    SP_RETURN_IF_ERROR(WaitFor(fd.get(), POLLOUT, deadline, what));
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) return ErrnoStatus(error, what);
  }
  return std::make_unique<UnixConnection>(std::move(fd));
}

UnixConnection::UnixConnection(UniqueFd fd) : fd_(std::move(fd)) {
  int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK);
}

StatusOr<size_t> UnixConnection::ReadSome(char* buffer, size_t size, Deadline deadline) {
  if (!fd_.valid()) return absl::UnavailableError("read: connection is closed");
  while (true) {
    ssize_t count = ::recv(fd_.get(), buffer, size, 0);
    if (count >= 0) return static_cast<size_t>(count);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoStatus(errno, "read");
    SP_RETURN_IF_ERROR(WaitFor(fd_.get(), POLLIN, deadline, "read"));
  }
}

Status UnixConnection::WriteAll(absl::string_view data, Deadline deadline) {
  if (!fd_.valid()) return absl::UnavailableError("write: connection is closed");
  while (!data.empty()) {
    ssize_t count = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
    if (count >= 0) {
      data.remove_prefix(static_cast<size_t>(count));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoStatus(errno, "write");
    SP_RETURN_IF_ERROR(WaitFor(fd_.get(), POLLOUT, deadline, "write"));
  }
  return absl::OkStatus();
}

StatusOr<std::unique_ptr<UnixListener>> UnixListener::Listen(absl::string_view path) {
  SP_ASSIGN_OR_RETURN(sockaddr_un address, MakeAddress(path));
  SP_ASSIGN_OR_RETURN(UniqueFd fd, NewSocket());
  std::string owned(path);
  struct stat info {};
  if (::lstat(owned.c_str(), &info) == 0 && S_ISSOCK(info.st_mode)) ::unlink(owned.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind ", path));
  }
  if (::listen(fd.get(), 8) != 0) return ErrnoStatus(errno, absl::StrCat("listen ", path));
  return std::unique_ptr<UnixListener>(new UnixListener(std::move(fd), std::move(owned)));
}

UnixListener::~UnixListener() {
  fd_.Reset();
  ::unlink(path_.c_str());
}

StatusOr<std::unique_ptr<UnixConnection>> UnixListener::Accept(Deadline deadline) {
  while (true) {
    int fd = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) return std::make_unique<UnixConnection>(UniqueFd(fd));
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ErrnoStatus(errno, "accept");
    SP_RETURN_IF_ERROR(WaitFor(fd_.get(), POLLIN, deadline, absl::StrCat("accept on ", path_)));
  }
}

StatusOr<std::string> LineReader::ReadUntil(char delimiter, Deadline deadline, size_t max_record) {
  size_t scanned = 0;
  while (true) {
    size_t at = buffer_.find(delimiter, scanned);
    if (at != std::string::npos) {
      std::string record = buffer_.substr(0, at);
      buffer_.erase(0, at + 1);
      return record;
    }
    scanned = buffer_.size();
    if (buffer_.size() > max_record) {
      return absl::ResourceExhaustedError(
          absl::StrCat("record longer than ", max_record, " bytes without a delimiter"));
    }
    char chunk[8192];
    SP_ASSIGN_OR_RETURN(size_t count, stream_->ReadSome(chunk, sizeof(chunk), deadline));
    if (count == 0) return absl::UnavailableError("connection closed by peer");
    buffer_.append(chunk, count);
  }
}

}  // namespace sp
