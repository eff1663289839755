#include "block/image_writer.h"

#include <libnbd.h>

#include <algorithm>

#include "block/internal/nbd_connection.h"
#include "platform/files.h"

namespace sp::block {

using internal::NbdConnection;
using internal::NbdStatus;

ImageWriter::ImageWriter(std::unique_ptr<NbdConnection> connection, WriterOptions options)
    : connection_(std::move(connection)), options_(std::move(options)) {
  options_.writes_in_flight = std::max<size_t>(1, options_.writes_in_flight);
}

// Queued writes still in flight point into pending_: the connection (and libnbd's use of the
// buffers) goes first.
ImageWriter::~ImageWriter() { connection_.reset(); }

const std::string& ImageWriter::label() const { return connection_->label(); }

Status ImageWriter::FinishConnect() {
  nbd_handle* handle = connection_->handle();
  int64_t size = nbd_get_size(handle);
  if (size < 0) return connection_->Fail(NbdStatus(connection_->Context("getting the size")));
  size_ = static_cast<uint64_t>(size);
  if (nbd_is_read_only(handle) == 1) {
    return absl::FailedPreconditionError(
        connection_->Context("the NBD server offers the image read-only"));
  }
  return absl::OkStatus();
}

Status ImageWriter::Write(std::string data, uint64_t offset) {
  SP_RETURN_IF_ERROR(connection_->broken());
  if (offset > size_ || data.size() > size_ - offset) {
    return absl::OutOfRangeError(
        connection_->Context(absl::StrCat("writing ", data.size(), " bytes at offset ", offset,
                                          " is past the end (size ", size_, ")")));
  }
  while (pending_.size() >= options_.writes_in_flight) SP_RETURN_IF_ERROR(RetireOldest());
  pending_.push_back({0, offset, std::move(data)});
  const std::string& buffer = pending_.back().data;
  int64_t cookie = nbd_aio_pwrite(connection_->handle(), buffer.data(), buffer.size(), offset,
                                  NBD_NULL_COMPLETION, 0);
  if (cookie < 0) {
    pending_.pop_back();
    return connection_->Fail(
        NbdStatus(connection_->Context(absl::StrCat("writing at offset ", offset))));
  }
  pending_.back().cookie = cookie;
  return absl::OkStatus();
}

Status ImageWriter::RetireOldest() {
  const Pending& oldest = pending_.front();
  SP_RETURN_IF_ERROR(connection_->AwaitCommand(
      oldest.cookie, options_.io_timeout,
      connection_->Context(absl::StrCat("writing at offset ", oldest.offset))));
  pending_.pop_front();
  return absl::OkStatus();
}

Status ImageWriter::Finish() {
  while (!pending_.empty()) SP_RETURN_IF_ERROR(RetireOldest());
  SP_RETURN_IF_ERROR(connection_->broken());
  nbd_handle* handle = connection_->handle();
  std::string flushing = connection_->Context("flushing");
  int64_t flush = nbd_aio_flush(handle, NBD_NULL_COMPLETION, 0);
  if (flush < 0) return connection_->Fail(NbdStatus(flushing));
  SP_RETURN_IF_ERROR(connection_->AwaitCommand(flush, options_.io_timeout, flushing));
  // A clean NBD_CMD_DISC; the server then closes its side (and a private qemu-nbd exits, which
  // closing the connection waits for).
  std::string disconnecting = connection_->Context("disconnecting");
  if (nbd_aio_disconnect(handle, 0) < 0) return connection_->Fail(NbdStatus(disconnecting));
  return connection_->PollUntil(
      [&] { return nbd_aio_is_closed(handle) == 1 || nbd_aio_is_dead(handle) == 1; },
      options_.io_timeout, disconnecting);
}

StatusOr<std::unique_ptr<ImageWriter>> OpenImageForWriting(const std::string& path,
                                                           const std::string& format,
                                                           const WriterOptions& options) {
  std::string label = options.label.empty() ? absl::StrCat("image ", path) : options.label;
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat(label, ": image file ", path, " does not exist"));
  }
  SP_ASSIGN_OR_RETURN(auto connection, NbdConnection::Create(std::move(label)));
  SP_RETURN_IF_ERROR(connection->ConnectQemuNbd(
      {"--format=" + format, "--cache=writeback", "--discard=unmap", "--", path},
      options.connect_timeout));
  std::unique_ptr<ImageWriter> writer(new ImageWriter(std::move(connection), options));
  SP_RETURN_IF_ERROR(writer->FinishConnect());
  return writer;
}

StatusOr<std::unique_ptr<ImageWriter>> ConnectNbdUnixForWriting(const std::string& socket_path,
                                                                const std::string& export_name,
                                                                const WriterOptions& options) {
  std::string label = options.label.empty()
                          ? absl::StrCat("NBD export '", export_name, "' at ", socket_path)
                          : options.label;
  SP_ASSIGN_OR_RETURN(auto connection, NbdConnection::Create(std::move(label)));
  SP_RETURN_IF_ERROR(connection->ConnectUnix(socket_path, export_name, options.connect_timeout));
  std::unique_ptr<ImageWriter> writer(new ImageWriter(std::move(connection), options));
  SP_RETURN_IF_ERROR(writer->FinishConnect());
  return writer;
}

}  // namespace sp::block
