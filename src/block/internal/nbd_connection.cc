#include "block/internal/nbd_connection.h"

#include <libnbd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "platform/environment.h"
#include "platform/files.h"

namespace sp::block::internal {

Status NbdStatus(absl::string_view what) {
  const char* text = nbd_get_error();
  std::string message = absl::StrCat(what, ": ", text != nullptr ? text : "unknown NBD error");
  switch (nbd_get_errno()) {
    case ENOENT:
      return absl::NotFoundError(message);
    case ETIMEDOUT:
      return absl::DeadlineExceededError(message);
    case EINVAL:
    case ERANGE:
    case ENOTSUP:
      return absl::InvalidArgumentError(message);
    case EIO:
      return absl::DataLossError(message);
    default:
      return absl::UnavailableError(message);
  }
}

namespace {

// Turns qemu-nbd's complaint about an image into a status with a meaning.
Status ImageOpenError(const std::string& label, const std::string& qemu_nbd_output,
                      const Status& nbd_error) {
  std::string output(absl::StripAsciiWhitespace(qemu_nbd_output));
  if (output.empty()) return nbd_error;
  if (absl::StrContains(output, "lock")) {
    return absl::FailedPreconditionError(absl::StrCat(
        label,
        " is in use by another process (a running VM?); stop it or capture it live: ", output));
  }
  if (absl::StrContains(output, "No such file")) {
    return absl::NotFoundError(absl::StrCat(label, ": ", output));
  }
  if (absl::StrContains(absl::AsciiStrToLower(output), "bitmap")) {
    return absl::NotFoundError(absl::StrCat(label, ": ", output));
  }
  return absl::InvalidArgumentError(absl::StrCat(label, ": qemu-nbd cannot open it: ", output));
}

}  // namespace

StatusOr<std::unique_ptr<NbdConnection>> NbdConnection::Create(
    std::string label, const std::vector<std::string>& meta_contexts) {
  nbd_handle* handle = nbd_create();
  if (handle == nullptr) return NbdStatus(absl::StrCat(label, ": creating an NBD handle"));
  std::unique_ptr<NbdConnection> connection(new NbdConnection(handle, std::move(label)));
  for (const std::string& context : meta_contexts) {
    if (nbd_add_meta_context(handle, context.c_str()) < 0) {
      return NbdStatus(connection->Context(absl::StrCat("requesting ", context)));
    }
  }
  return connection;
}

NbdConnection::NbdConnection(nbd_handle* handle, std::string label)
    : handle_(handle), label_(std::move(label)) {}

NbdConnection::~NbdConnection() { nbd_close(handle_); }

std::string NbdConnection::Context(absl::string_view what) const {
  return absl::StrCat(label_, ": ", what);
}

Status NbdConnection::Fail(Status status) {
  if (broken_.ok()) broken_ = status;
  return status;
}

Status NbdConnection::PollUntil(const std::function<bool()>& finished, Millis timeout,
                                const std::string& what) {
  Deadline deadline = Deadline::In(timeout);
  while (!finished()) {
    if (!broken_.ok()) return broken_;
    if (nbd_aio_is_dead(handle_) == 1 || nbd_aio_is_closed(handle_) == 1) {
      return Fail(absl::UnavailableError(absl::StrCat(what, ": the NBD connection is closed")));
    }
    if (deadline.Expired()) {
      return Fail(absl::DeadlineExceededError(
          absl::StrCat(what, ": the NBD server did not answer within ", timeout.count(), " ms")));
    }
    if (nbd_poll(handle_, std::max(1, deadline.PollTimeoutMs())) < 0) {
      return Fail(NbdStatus(what));
    }
  }
  return absl::OkStatus();
}

Status NbdConnection::AwaitCommand(int64_t cookie, Millis timeout, const std::string& what) {
  int state = 0;
  SP_RETURN_IF_ERROR(PollUntil(
      [&] {
        state = nbd_aio_command_completed(handle_, static_cast<uint64_t>(cookie));
        return state != 0;
      },
      timeout, what));
  if (state < 0) return NbdStatus(what);
  return absl::OkStatus();
}

Status NbdConnection::AwaitHandshake(Millis timeout) {
  std::string what = Context("connecting");
  SP_RETURN_IF_ERROR(PollUntil(
      [&] {
        return nbd_aio_is_connecting(handle_) == 0 && nbd_aio_is_negotiating(handle_) == 0 &&
               nbd_aio_is_created(handle_) == 0;
      },
      timeout, what));
  if (nbd_aio_is_ready(handle_) == 0) return Fail(NbdStatus(what));
  return absl::OkStatus();
}

Status NbdConnection::ConnectUnix(const std::string& socket_path, const std::string& export_name,
                                  Millis timeout) {
  struct stat info {};
  if (::stat(socket_path.c_str(), &info) != 0) {
    return absl::NotFoundError(Context(absl::StrCat("no NBD socket at ", socket_path)));
  }
  if (nbd_set_export_name(handle_, export_name.c_str()) < 0 ||
      nbd_aio_connect_unix(handle_, socket_path.c_str()) < 0) {
    return NbdStatus(Context("connecting"));
  }
  return AwaitHandshake(timeout);
}

Status NbdConnection::ConnectQemuNbd(const std::vector<std::string>& qemu_nbd_args,
                                     Millis timeout) {
  // qemu-nbd's stderr goes to a private file so that its reason for refusing can be reported.
  std::string log_path = absl::StrCat(TempDirectory(), "/sp-qemu-nbd-XXXXXX");
  int log_fd = ::mkstemp(log_path.data());
  if (log_fd < 0) return ErrnoStatus(errno, Context(absl::StrCat("creating ", log_path)));
  ::close(log_fd);
  absl::Cleanup remove_log = [&] { ::unlink(log_path.c_str()); };

  std::vector<std::string> argv = {"/bin/sh", "-c", "exec 2>\"$0\"; exec qemu-nbd \"$@\"",
                                   log_path};
  argv.insert(argv.end(), qemu_nbd_args.begin(), qemu_nbd_args.end());
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  if (nbd_aio_connect_systemd_socket_activation(handle_, args.data()) < 0) {
    return NbdStatus(Context("starting qemu-nbd"));
  }
  Status connected = AwaitHandshake(timeout);
  if (!connected.ok()) return ImageOpenError(label_, ReadFile(log_path).value_or(""), connected);
  return absl::OkStatus();
}

}  // namespace sp::block::internal
