// Fuzz target: the manifest decoder (untrusted JSON from disk or an imported directory).
#include <cstddef>
#include <cstdint>

#include "repo/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto manifest = sp::repo::DecodeManifest(text);
  if (manifest.ok()) {
    // Whatever decodes must survive a round trip.
    auto again = sp::repo::DecodeManifest(sp::repo::EncodeManifest(*manifest));
    if (!again.ok() || again->id != manifest->id ||
        again->volumes.size() != manifest->volumes.size()) {
      __builtin_trap();
    }
  }
  return 0;
}
