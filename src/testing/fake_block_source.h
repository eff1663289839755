// Test helper: an in-memory volume behind block::BlockSource. Its extents (holes, and for a source
// with a dirty bitmap, which ranges changed) are given explicitly; reads go through the
// synchronous default of StartRead, and the read covering `fail_at_` fails.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "block/block_source.h"

namespace sp::testing {

class FakeBlockSource final : public block::BlockSource {
 public:
  FakeBlockSource(std::string bytes, std::vector<block::Extent> extents, bool bitmap)
      : bytes_(std::move(bytes)), extents_(std::move(extents)), bitmap_(bitmap) {}
  uint64_t size() const override { return bytes_.size(); }
  bool has_dirty_bitmap() const override { return bitmap_; }
  uint64_t max_read_size() const override { return max_read_size_; }
  const std::string& label() const override { return label_; }
  StatusOr<std::vector<block::Extent>> Extents(uint64_t offset, uint64_t length) override {
    std::vector<block::Extent> out;
    for (block::Extent extent : extents_) {
      uint64_t begin = std::max(extent.offset, offset);
      uint64_t end = std::min(extent.offset + extent.length, offset + length);
      if (begin < end) out.push_back({begin, end - begin, extent.zero, extent.dirty});
    }
    return out;
  }
  Status ReadAt(uint64_t offset, uint64_t length, char* buffer) override {
    if (fail_at_ >= offset && fail_at_ < offset + length) {
      return absl::DataLossError(absl::StrCat("read failed at offset ", offset));
    }
    bytes_.copy(buffer, length, offset);
    bytes_read_ += length;
    if (on_read_) on_read_(offset, length);
    return absl::OkStatus();
  }

  std::string bytes_;
  std::vector<block::Extent> extents_;
  bool bitmap_;
  std::string label_ = "fake";
  uint64_t max_read_size_ = block::kMaxNbdRequest;
  uint64_t bytes_read_ = 0;
  uint64_t fail_at_ = UINT64_MAX;
  std::function<void(uint64_t offset, uint64_t length)> on_read_;  // after each read; may be null
};

}  // namespace sp::testing
