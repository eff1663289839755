// BlockSource over libnbd: live QEMU exports and qemu-nbd for image files. Every wait on the
// server has a deadline (internal/nbd_connection.h).
#include <libnbd.h>

#include <algorithm>
#include <functional>
#include <map>

#include "block/block_source.h"
#include "block/internal/nbd_connection.h"
#include "platform/files.h"

namespace sp::block {

StatusOr<ReadTicket> BlockSource::StartRead(uint64_t offset, uint64_t length, char* buffer) {
  SP_RETURN_IF_ERROR(ReadAt(offset, length, buffer));
  finished_.push_back(next_ticket_);
  return next_ticket_++;
}

StatusOr<std::vector<ReadTicket>> BlockSource::WaitForReads() {
  std::vector<ReadTicket> done;
  done.swap(finished_);
  return done;
}

namespace {

constexpr const char* kAllocationContext = "base:allocation";
constexpr uint32_t kStateZero = 2;   // base:allocation: reads as zeros
constexpr uint32_t kStateDirty = 1;  // qemu:dirty-bitmap: changed
constexpr uint64_t kStatusWindow = 1u << 30;

using internal::NbdConnection;
using internal::NbdStatus;

// What one block-status request returned, per meta context. Shared with libnbd's callback so
// that a reply arriving after we gave up never touches freed memory.
struct StatusReply {
  std::vector<uint32_t> allocation;  // (length, flags) pairs
  std::vector<uint32_t> dirty;
};

int CollectExtents(void* user_data, const char* context, uint64_t, uint32_t* entries, size_t count,
                   int*) {
  auto* reply = static_cast<std::shared_ptr<StatusReply>*>(user_data);
  auto& target =
      absl::string_view(context) == kAllocationContext ? (*reply)->allocation : (*reply)->dirty;
  target.assign(entries, entries + count);
  return 0;
}

void FreeReply(void* user_data) { delete static_cast<std::shared_ptr<StatusReply>*>(user_data); }

// Walks (length, flags) pairs of one context as a sequence of runs.
class RunCursor {
 public:
  RunCursor(const std::vector<uint32_t>* pairs, uint64_t fallback_length)
      : pairs_(pairs), fallback_(fallback_length) {}
  bool done() const { return pairs_ ? index_ + 1 >= pairs_->size() : fallback_ == 0; }
  uint64_t left() const { return pairs_ ? (*pairs_)[index_] - used_ : fallback_; }
  uint32_t flags() const { return pairs_ ? (*pairs_)[index_ + 1] : 0; }
  void Take(uint64_t bytes) {
    if (!pairs_) {
      fallback_ -= bytes;
      return;
    }
    used_ += bytes;
    if (used_ == (*pairs_)[index_]) {
      index_ += 2;
      used_ = 0;
    }
  }

 private:
  const std::vector<uint32_t>* pairs_;
  uint64_t fallback_;
  size_t index_ = 0;
  uint64_t used_ = 0;
};

void AppendExtent(std::vector<Extent>& out, Extent extent) {
  if (!out.empty() && out.back().zero == extent.zero && out.back().dirty == extent.dirty &&
      out.back().offset + out.back().length == extent.offset) {
    out.back().length += extent.length;
  } else {
    out.push_back(extent);
  }
}

class NbdSource final : public BlockSource {
 public:
  NbdSource(std::unique_ptr<NbdConnection> connection, ConnectOptions options)
      : connection_(std::move(connection)), options_(std::move(options)) {}

  // After the handshake: learns the size, limits and negotiated contexts.
  Status FinishConnect() {
    int64_t size = nbd_get_size(h());
    if (size < 0) return Fail(NbdStatus(Context("getting the size")));
    size_ = static_cast<uint64_t>(size);
    int64_t maximum = nbd_get_block_size(h(), LIBNBD_SIZE_MAXIMUM);
    if (maximum > 0) max_read_ = std::min<uint64_t>(kMaxNbdRequest, static_cast<uint64_t>(maximum));
    has_allocation_ = nbd_can_meta_context(h(), kAllocationContext) == 1;
    if (!options_.dirty_bitmap.empty()) {
      if (nbd_can_meta_context(h(), BitmapContext().c_str()) != 1) {
        return absl::NotFoundError(absl::StrCat(
            label(), ": the server did not export dirty bitmap '", options_.dirty_bitmap, "'"));
      }
      has_bitmap_ = true;
    }
    return absl::OkStatus();
  }

  std::string BitmapContext() const {
    return absl::StrCat("qemu:dirty-bitmap:", options_.dirty_bitmap);
  }

  uint64_t size() const override { return size_; }
  bool has_dirty_bitmap() const override { return has_bitmap_; }
  uint64_t max_read_size() const override { return max_read_; }
  const std::string& label() const override { return connection_->label(); }
  size_t reads_in_flight() const override { return reads_.size(); }

  StatusOr<std::vector<Extent>> Extents(uint64_t offset, uint64_t length) override {
    SP_RETURN_IF_ERROR(CheckRange(offset, length, "reading extents"));
    std::vector<Extent> out;
    uint64_t end = offset + length;
    for (uint64_t at = offset; at < end;) {
      SP_ASSIGN_OR_RETURN(uint64_t covered,
                          ExtentsOnce(at, std::min(end - at, kStatusWindow), out));
      at += covered;
    }
    return out;
  }

  Status ReadAt(uint64_t offset, uint64_t length, char* buffer) override {
    SP_RETURN_IF_ERROR(CheckRange(offset, length, "reading"));
    std::map<int64_t, uint64_t> cookies;  // cookie → offset
    for (uint64_t done = 0; done < length; done += max_read_) {
      uint64_t piece = std::min(max_read_, length - done);
      SP_ASSIGN_OR_RETURN(int64_t cookie, IssueRead(offset + done, piece, buffer + done));
      cookies[cookie] = offset + done;
    }
    Status first_error;
    SP_RETURN_IF_ERROR(PollUntil([&] { return Retire(cookies, nullptr, first_error); },
                                 options_.io_timeout, AtOffset("reading", offset)));
    return first_error;
  }

  StatusOr<ReadTicket> StartRead(uint64_t offset, uint64_t length, char* buffer) override {
    SP_RETURN_IF_ERROR(CheckRange(offset, length, "reading"));
    if (length > max_read_) {
      return absl::InvalidArgumentError(
          absl::StrCat(label(), ": read of ", length, " bytes exceeds the limit of ", max_read_));
    }
    SP_ASSIGN_OR_RETURN(int64_t cookie, IssueRead(offset, length, buffer));
    reads_[cookie] = offset;
    return static_cast<ReadTicket>(cookie);
  }

  StatusOr<std::vector<ReadTicket>> WaitForReads() override {
    std::vector<ReadTicket> done;
    if (reads_.empty()) return done;
    Status first_error;
    SP_RETURN_IF_ERROR(PollUntil([&] { return Retire(reads_, &done, first_error); },
                                 options_.io_timeout, AtOffset("reading", reads_.begin()->second)));
    SP_RETURN_IF_ERROR(first_error);
    return done;
  }

 private:
  nbd_handle* h() const { return connection_->handle(); }

  std::string Context(absl::string_view what) const { return connection_->Context(what); }
  std::string AtOffset(absl::string_view what, uint64_t offset) const {
    return absl::StrCat(label(), ": ", what, " at offset ", offset);
  }
  Status Fail(Status status) { return connection_->Fail(std::move(status)); }
  Status PollUntil(const std::function<bool()>& finished, Millis timeout, const std::string& what) {
    return connection_->PollUntil(finished, timeout, what);
  }

  Status CheckRange(uint64_t offset, uint64_t length, absl::string_view what) const {
    if (!connection_->broken().ok()) return connection_->broken();
    if (offset > size_ || length > size_ - offset) {
      return absl::OutOfRangeError(absl::StrCat(label(), ": ", what, " ", length,
                                                " bytes at offset ", offset,
                                                " is past the end (size ", size_, ")"));
    }
    return absl::OkStatus();
  }

  StatusOr<int64_t> IssueRead(uint64_t offset, uint64_t length, char* buffer) {
    int64_t cookie = nbd_aio_pread(h(), buffer, length, offset, NBD_NULL_COMPLETION, 0);
    if (cookie < 0) return Fail(NbdStatus(AtOffset("reading", offset)));
    return cookie;
  }

  // Retires finished commands among `cookies` (removing them, adding them to *done); true when
  // at least one finished (or, without `done`, when all did). The first failure goes to `error`.
  bool Retire(std::map<int64_t, uint64_t>& cookies, std::vector<ReadTicket>* done, Status& error) {
    for (auto it = cookies.begin(); it != cookies.end();) {
      int state = nbd_aio_command_completed(h(), static_cast<uint64_t>(it->first));
      if (state == 0) {
        ++it;
        continue;
      }
      if (state < 0 && error.ok()) error = NbdStatus(AtOffset("reading", it->second));
      if (done != nullptr) done->push_back(static_cast<ReadTicket>(it->first));
      it = cookies.erase(it);
    }
    return done != nullptr ? !done->empty() : cookies.empty();
  }

  // One block-status request from `offset`: appends the extents it describes (at most `length`
  // bytes) to `out` and returns how many bytes they cover.
  StatusOr<uint64_t> ExtentsOnce(uint64_t offset, uint64_t length, std::vector<Extent>& out) {
    if (!has_allocation_ && !has_bitmap_) {
      AppendExtent(out, {offset, length, false, true});
      return length;
    }
    auto reply = std::make_shared<StatusReply>();
    nbd_extent_callback callback{CollectExtents, new std::shared_ptr<StatusReply>(reply),
                                 FreeReply};
    int64_t cookie = nbd_aio_block_status(h(), length, offset, callback, NBD_NULL_COMPLETION, 0);
    if (cookie < 0) return Fail(NbdStatus(AtOffset("reading extents", offset)));
    Status error;
    std::map<int64_t, uint64_t> pending{{cookie, offset}};
    SP_RETURN_IF_ERROR(PollUntil([&] { return Retire(pending, nullptr, error); },
                                 options_.io_timeout, AtOffset("reading extents", offset)));
    if (!error.ok()) return Annotate(error, "block status");
    return MergeReply(*reply, offset, length, out);
  }

  // Merges the contexts' runs into extents where both are known.
  StatusOr<uint64_t> MergeReply(const StatusReply& reply, uint64_t offset, uint64_t length,
                                std::vector<Extent>& out) const {
    RunCursor allocation(has_allocation_ ? &reply.allocation : nullptr, length);
    RunCursor dirty(has_bitmap_ ? &reply.dirty : nullptr, length);
    uint64_t covered = 0;
    while (covered < length && !allocation.done() && !dirty.done()) {
      uint64_t run = std::min({allocation.left(), dirty.left(), length - covered});
      if (run == 0) break;
      bool zero = has_allocation_ && (allocation.flags() & kStateZero) != 0;
      bool is_dirty = !has_bitmap_ || (dirty.flags() & kStateDirty) != 0;
      AppendExtent(out, {offset + covered, run, zero, is_dirty});
      allocation.Take(run);
      dirty.Take(run);
      covered += run;
    }
    if (covered == 0) {
      return absl::InternalError(AtOffset("the NBD server returned no extents", offset));
    }
    return covered;
  }

  std::unique_ptr<NbdConnection> connection_;
  ConnectOptions options_;
  uint64_t size_ = 0;
  uint64_t max_read_ = kMaxNbdRequest;
  bool has_allocation_ = false;
  bool has_bitmap_ = false;
  std::map<int64_t, uint64_t> reads_;  // StartRead cookies in flight → offset
};

StatusOr<std::unique_ptr<NbdConnection>> NewConnection(const ConnectOptions& options,
                                                       std::string label) {
  std::vector<std::string> contexts = {kAllocationContext};
  if (!options.dirty_bitmap.empty()) {
    contexts.push_back(absl::StrCat("qemu:dirty-bitmap:", options.dirty_bitmap));
  }
  return NbdConnection::Create(std::move(label), contexts);
}

}  // namespace

StatusOr<std::unique_ptr<BlockSource>> ConnectNbdUnix(const std::string& socket_path,
                                                      const std::string& export_name,
                                                      const ConnectOptions& options) {
  std::string label = options.label.empty()
                          ? absl::StrCat("NBD export '", export_name, "' at ", socket_path)
                          : options.label;
  SP_ASSIGN_OR_RETURN(auto connection, NewConnection(options, std::move(label)));
  SP_RETURN_IF_ERROR(connection->ConnectUnix(socket_path, export_name, options.connect_timeout));
  auto source = std::make_unique<NbdSource>(std::move(connection), options);
  SP_RETURN_IF_ERROR(source->FinishConnect());
  return std::unique_ptr<BlockSource>(std::move(source));
}

StatusOr<std::unique_ptr<BlockSource>> OpenImage(const std::string& path, const std::string& format,
                                                 const ConnectOptions& options) {
  std::string label = options.label.empty() ? absl::StrCat("image ", path) : options.label;
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat(label, ": image file ", path, " does not exist"));
  }
  std::vector<std::string> args = {"--read-only", "--format=" + format};
  if (!options.dirty_bitmap.empty()) args.push_back("--bitmap=" + options.dirty_bitmap);
  args.push_back("--");
  args.push_back(path);
  SP_ASSIGN_OR_RETURN(auto connection, NewConnection(options, std::move(label)));
  SP_RETURN_IF_ERROR(connection->ConnectQemuNbd(args, options.connect_timeout));
  auto source = std::make_unique<NbdSource>(std::move(connection), options);
  SP_RETURN_IF_ERROR(source->FinishConnect());
  return std::unique_ptr<BlockSource>(std::move(source));
}

}  // namespace sp::block
