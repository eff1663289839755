// Internal to block/: one libnbd handle driven with a deadline on every wait, shared by the
// reading source (nbd_source.cc) and the image writer (image_writer.cc).
//
// Every call that talks to the server is issued asynchronously (nbd_aio_*) and driven by
// nbd_poll with a deadline, so a server that stops answering costs at most the given timeout.
// The first fatal error (a timeout, a dead connection) breaks the connection: every later wait
// returns it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/clock.h"
#include "platform/status.h"

struct nbd_handle;

namespace sp::block::internal {

// The status for libnbd's last error on this thread, prefixed with `what`: NotFound (ENOENT),
// DeadlineExceeded (ETIMEDOUT), InvalidArgument (EINVAL, ERANGE, ENOTSUP), DataLoss (EIO),
// else Unavailable.
Status NbdStatus(absl::string_view what);

class NbdConnection {
 public:
  // A new, unconnected handle that requests the meta contexts `meta_contexts` (may be empty).
  // `label` names the volume or image in every message.
  static StatusOr<std::unique_ptr<NbdConnection>> Create(
      std::string label, const std::vector<std::string>& meta_contexts = {});
  ~NbdConnection();
  NbdConnection(const NbdConnection&) = delete;
  NbdConnection& operator=(const NbdConnection&) = delete;

  nbd_handle* handle() const { return handle_; }
  const std::string& label() const { return label_; }
  // OK until the first fatal error, then that error.
  const Status& broken() const { return broken_; }

  // Starts connecting to `export_name` on the unix socket `socket_path` and waits for the
  // handshake, at most `timeout`.
  Status ConnectUnix(const std::string& socket_path, const std::string& export_name,
                     Millis timeout);
  // Starts a private qemu-nbd with `qemu_nbd_args` (libnbd's systemd socket activation; it exits
  // when the connection closes) and waits for the handshake, at most `timeout`. qemu-nbd's
  // complaint about the image becomes the error: FailedPrecondition when another process holds
  // the image's lock, NotFound for a missing file or bitmap, InvalidArgument otherwise.
  Status ConnectQemuNbd(const std::vector<std::string>& qemu_nbd_args, Millis timeout);

  // Drives the connection until `finished()` or the deadline. DeadlineExceeded (and the
  // connection is broken) when the server did not answer within `timeout`; Unavailable when the
  // connection died. `what` prefixes the message.
  Status PollUntil(const std::function<bool()>& finished, Millis timeout, const std::string& what);
  // Waits for the command `cookie`, at most `timeout`; its own failure as NbdStatus(what).
  Status AwaitCommand(int64_t cookie, Millis timeout, const std::string& what);

  // Records `status` as the connection's fatal error (unless one is recorded) and returns it.
  Status Fail(Status status);
  // `label`: `what`.
  std::string Context(absl::string_view what) const;

 private:
  NbdConnection(nbd_handle* handle, std::string label);
  // Waits until the handshake is over; then OK only when the connection is ready.
  Status AwaitHandshake(Millis timeout);

  nbd_handle* const handle_;
  const std::string label_;
  Status broken_;
};

}  // namespace sp::block::internal
