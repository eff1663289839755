// Fuzz target: the volume index decoder (untrusted bytes from disk or an imported directory).
#include <cstddef>
#include <cstdint>

#include "repo/internal/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto index = sp::repo::internal::DecodeIndex(bytes);
  if (index.ok()) {
    // Whatever decodes must encode back to the same bytes.
    if (sp::repo::internal::EncodeIndex(*index) != bytes) __builtin_trap();
  }
  auto header = sp::repo::internal::DecodeChunkHeader(bytes);
  (void)header;
  return 0;
}
