// Fuzz target for the partition-table and ext4 superblock parsing of block/fs_probe: the input is
// a volume's bytes (a guest controls them entirely).
#include <cstddef>
#include <cstdint>
#include <string>

#include "block/fs_probe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string volume(reinterpret_cast<const char*>(data), size);
  auto found = sp::block::ProbeExt4(
      volume.size(), [&volume](uint64_t offset, uint64_t length, char* buffer) {
        if (offset > volume.size() || length > volume.size() - offset) {
          return absl::OutOfRangeError("read past the end");
        }
        volume.copy(buffer, length, offset);
        return absl::OkStatus();
      });
  (void)found;
  return 0;
}
