// block: read-only access to one disk over NBD, the way capture reads volumes.
//
// A BlockSource is a point-in-time view of one volume: its size, which ranges read as zeros (and,
// for an incremental, which ranges changed since a dirty bitmap was started), and its bytes.
// Two real sources exist, both speaking NBD through libnbd:
//   ConnectNbdUnix  a live export of QEMU's NBD server (the point-in-time node of a running VM),
//                   optionally with the dirty bitmap "qemu:dirty-bitmap:NAME";
//   OpenImage       a stopped VM's image file, served read-only by a private qemu-nbd that libnbd
//                   starts by systemd socket activation and stops when the source is destroyed.
// Tests may implement the interface themselves (only size/Extents/ReadAt are required).
//
// Time: every wait on the server is bounded (ConnectOptions::connect_timeout for the handshake,
// io_timeout for each request or batch of requests); a server that stops answering yields
// DeadlineExceeded, and the source is broken from then on (every later call returns that error).
//
// Threads: a source is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/clock.h"
#include "platform/status.h"

namespace sp::block {

// The largest single read libnbd accepts.
inline constexpr uint64_t kMaxNbdRequest = 32u << 20;

// A run of bytes with the same state.
struct Extent {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool zero = false;  // reads as zeros (a hole or a zeroed range): no need to read it
  bool dirty = true;  // changed since the bitmap started; true for all when there is no bitmap
};

struct ConnectOptions {
  // Dirty bitmap exported with the node (QEMU's block-export-add "bitmaps"); empty = none.
  // Negotiated as the meta context "qemu:dirty-bitmap:NAME" beside "base:allocation".
  std::string dirty_bitmap;
  Millis connect_timeout{10'000};  // connect + NBD handshake (and qemu-nbd's start)
  Millis io_timeout{60'000};       // each request, or each wait for a batch in flight
  // Names the volume in error messages, e.g. "volume 'vda' of VM 'web01'". Empty = the socket
  // path or image path is used.
  std::string label;
};

// Identifies a read started with StartRead.
using ReadTicket = uint64_t;

class BlockSource {
 public:
  virtual ~BlockSource() = default;

  // Size of the volume in bytes.
  virtual uint64_t size() const = 0;
  // True when a dirty bitmap was negotiated: Extents() then reports real dirty flags.
  virtual bool has_dirty_bitmap() const { return false; }
  // The largest length StartRead accepts (the server's maximum request size, ≤ 32 MiB).
  virtual uint64_t max_read_size() const { return kMaxNbdRequest; }
  // Names the volume in messages.
  virtual const std::string& label() const = 0;

  // The extents covering exactly [offset, offset+length), in order, adjacent, none empty.
  // REQUIRES: offset + length <= size().
  virtual StatusOr<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) = 0;

  // Reads `length` bytes at `offset` into `buffer` (caller-owned, at least `length` bytes).
  // Errors carry the server's text and the offset. REQUIRES: offset + length <= size().
  virtual Status ReadAt(uint64_t offset, uint64_t length, char* buffer) = 0;

  // Asynchronous reads, for keeping several requests in flight. StartRead queues a read of
  // `length` (≤ max_read_size()) bytes at `offset` into `buffer`, which must stay valid and
  // untouched until WaitForReads reports the ticket done. WaitForReads waits until at least one
  // started read has finished and returns the finished tickets (empty only when none is in
  // flight); an error means a read failed (the message names its offset) or the server stopped
  // answering. After an error the caller must not rely on buffers of reads still in flight;
  // destroying the source is always safe.
  // The default implementation reads synchronously through ReadAt.
  virtual StatusOr<ReadTicket> StartRead(uint64_t offset, uint64_t length, char* buffer);
  virtual StatusOr<std::vector<ReadTicket>> WaitForReads();
  // Number of reads started and not yet reported by WaitForReads.
  virtual size_t reads_in_flight() const { return finished_.size(); }

 private:
  std::vector<ReadTicket> finished_;  // default implementation only
  ReadTicket next_ticket_ = 1;
};

// Connects to the NBD export `export_name` on the unix socket `socket_path` (QEMU's
// nbd-server-start). NotFound when the socket does not exist or the dirty bitmap was not exported;
// Unavailable when nothing listens or the server refused the export; DeadlineExceeded when the
// handshake did not finish within options.connect_timeout.
StatusOr<std::unique_ptr<BlockSource>> ConnectNbdUnix(const std::string& socket_path,
                                                      const std::string& export_name,
                                                      const ConnectOptions& options = {});

// Opens the image file `path` of format `format` ("qcow2", "raw") read-only through a private
// qemu-nbd (stopped when the source is destroyed). NotFound when the image does not exist (or
// options.dirty_bitmap names no persistent bitmap in it); FailedPrecondition when another process
// (a running QEMU) holds the image's lock; InvalidArgument when qemu-nbd cannot open it as
// `format`. options.dirty_bitmap exports a persistent qcow2 bitmap (qemu-nbd --bitmap).
StatusOr<std::unique_ptr<BlockSource>> OpenImage(const std::string& path, const std::string& format,
                                                 const ConnectOptions& options = {});

}  // namespace sp::block
