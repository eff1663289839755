// Unix stream sockets with a deadline on every blocking operation.
//
// QEMU's QMP and guest-agent channels, QEMU's NBD server and stillpoint's own helper processes
// all speak over unix sockets. A peer that hangs must never hang stillpoint: every read, write
// and connect takes a Deadline and fails with DeadlineExceeded when it passes.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "platform/clock.h"
#include "platform/fd.h"
#include "platform/status.h"

namespace sp {

// The longest path a unix socket address can hold (sun_path minus the terminating NUL).
inline constexpr size_t kMaxUnixSocketPath = 107;

// Returns InvalidArgument naming `path` and the limit when `path` cannot be a socket address.
Status CheckUnixSocketPath(absl::string_view path);

// A connected byte stream. Abstract so that tests can inject a peer that hangs or breaks.
class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads at least 1 and at most `size` bytes. Returns the count; 0 means the peer closed.
  // DeadlineExceeded when nothing arrived in time; Unavailable on a broken connection.
  virtual StatusOr<size_t> ReadSome(char* buffer, size_t size, Deadline deadline) = 0;
  // Writes all of `data`, or returns an error (DeadlineExceeded, Unavailable).
  virtual Status WriteAll(absl::string_view data, Deadline deadline) = 0;
  // Closes the stream; later calls fail with Unavailable.
  virtual void Close() = 0;
};

// A connected unix stream socket (non-blocking underneath).
class UnixConnection final : public ByteStream {
 public:
  // Connects to the socket at `path`. NotFound when nothing is there, Unavailable when nobody
  // listens, DeadlineExceeded when the connect does not finish in time.
  static StatusOr<std::unique_ptr<UnixConnection>> Connect(absl::string_view path,
                                                           Deadline deadline);
  // Wraps an already connected socket; takes ownership.
  explicit UnixConnection(UniqueFd fd);

  StatusOr<size_t> ReadSome(char* buffer, size_t size, Deadline deadline) override;
  Status WriteAll(absl::string_view data, Deadline deadline) override;
  void Close() override { fd_.Reset(); }
  int fd() const { return fd_.get(); }

 private:
  UniqueFd fd_;
};

// A listening unix socket. Used by stillpoint's helper processes and by tests as a fake peer.
class UnixListener {
 public:
  // Binds and listens at `path`, replacing a stale socket file left there.
  static StatusOr<std::unique_ptr<UnixListener>> Listen(absl::string_view path);
  ~UnixListener();

  // Waits for one client. DeadlineExceeded when none came in time.
  StatusOr<std::unique_ptr<UnixConnection>> Accept(Deadline deadline);
  const std::string& path() const { return path_; }

 private:
  UnixListener(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
};

// Reads newline- or byte-delimited records from a ByteStream, keeping what it read ahead.
class LineReader {
 public:
  explicit LineReader(ByteStream* stream) : stream_(stream) {}

  // Returns the next record up to (not including) `delimiter`. Unavailable("... closed") at EOF;
  // DeadlineExceeded when no full record arrived in time (partial data is kept for later);
  // ResourceExhausted when a record grows beyond `max_record` bytes.
  StatusOr<std::string> ReadUntil(char delimiter, Deadline deadline,
                                  size_t max_record = size_t{16} * 1024 * 1024);
  StatusOr<std::string> ReadLine(Deadline deadline) { return ReadUntil('\n', deadline); }
  // Drops everything read ahead so far.
  void DiscardBuffered() { buffer_.clear(); }

 private:
  ByteStream* stream_;
  std::string buffer_;
};

}  // namespace sp
