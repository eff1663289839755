// Fuzz target for the export manifest parser of restore/ (`snapshot import` reads directories
// from shares that anyone may have written). A manifest that parses must encode and parse again
// to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "restore/export.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = sp::restore::ParseExportManifest(text);
  if (!parsed.ok()) return 0;
  std::string encoded = sp::restore::EncodeExportManifest(*parsed);
  auto again = sp::restore::ParseExportManifest(encoded);
  if (!again.ok() || sp::restore::EncodeExportManifest(*again) != encoded) std::abort();
  return 0;
}
