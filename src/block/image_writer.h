// block: writing into a disk image over NBD, the way restore fills new qcow2 images.
//
// An ImageWriter queues writes with a few requests in flight (so that the caller's work, the
// socket and the server's disk writes overlap), then flushes. Two ways in, both through libnbd:
//   OpenImageForWriting  an image file served writable by a private qemu-nbd (socket
//                        activation; it exits when the writer is destroyed);
//   ConnectNbdUnixForWriting  a writable export on a unix socket (e.g. qemu-storage-daemon).
//
// Time: as for BlockSource, every wait on the server is bounded (WriterOptions::connect_timeout
// for the handshake, io_timeout for each request); a server that stops answering yields
// DeadlineExceeded, and the writer is broken from then on (every later call returns that error).
//
// Threads: a writer is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "platform/clock.h"
#include "platform/status.h"

namespace sp::block {

namespace internal {
class NbdConnection;
}  // namespace internal

struct WriterOptions {
  Millis connect_timeout{10'000};  // connect + NBD handshake (and qemu-nbd's start)
  // Each request. A server that takes longer for one write or the flush is stuck (its disk, or
  // itself).
  Millis io_timeout{120'000};
  size_t writes_in_flight = 4;  // at least 1
  // Names the image in error messages. Empty = the image path or the export.
  std::string label;
};

class ImageWriter {
 public:
  ~ImageWriter();
  ImageWriter(const ImageWriter&) = delete;
  ImageWriter& operator=(const ImageWriter&) = delete;

  // Size of the image in bytes.
  uint64_t size() const { return size_; }
  const std::string& label() const;

  // Queues a write of `data` at `offset`, first waiting for the oldest write when
  // writes_in_flight are in flight. The writer keeps `data` until the write completed.
  // OutOfRange past the end of the image; the server's error (naming the offset) for an
  // earlier write that failed; DeadlineExceeded when the server stopped answering.
  Status Write(std::string data, uint64_t offset);
  // Waits for every queued write, flushes the image to its storage and closes the connection.
  // The image is complete (as far as it was written) only after Finish returned OK.
  Status Finish();

 private:
  friend StatusOr<std::unique_ptr<ImageWriter>> OpenImageForWriting(const std::string&,
                                                                    const std::string&,
                                                                    const WriterOptions&);
  friend StatusOr<std::unique_ptr<ImageWriter>> ConnectNbdUnixForWriting(const std::string&,
                                                                         const std::string&,
                                                                         const WriterOptions&);
  struct Pending {
    int64_t cookie = 0;
    uint64_t offset = 0;
    std::string data;  // must stay untouched until the write completed
  };

  ImageWriter(std::unique_ptr<internal::NbdConnection> connection, WriterOptions options);
  // Learns the size and checks that the server takes writes.
  Status FinishConnect();
  Status RetireOldest();

  std::unique_ptr<internal::NbdConnection> connection_;
  WriterOptions options_;
  uint64_t size_ = 0;
  std::deque<Pending> pending_;
};

// Opens the existing image file `path` of format `format` ("qcow2", "raw") for writing through a
// private qemu-nbd. NotFound when the image does not exist; FailedPrecondition when another
// process holds its lock; InvalidArgument when qemu-nbd cannot open it as `format`;
// DeadlineExceeded when qemu-nbd did not answer within options.connect_timeout.
StatusOr<std::unique_ptr<ImageWriter>> OpenImageForWriting(const std::string& path,
                                                           const std::string& format,
                                                           const WriterOptions& options = {});

// Connects to the writable NBD export `export_name` on the unix socket `socket_path`. NotFound
// when the socket does not exist; FailedPrecondition when the export is read-only; Unavailable
// when nothing listens; DeadlineExceeded when the handshake did not finish in time.
StatusOr<std::unique_ptr<ImageWriter>> ConnectNbdUnixForWriting(const std::string& socket_path,
                                                                const std::string& export_name,
                                                                const WriterOptions& options = {});

}  // namespace sp::block
