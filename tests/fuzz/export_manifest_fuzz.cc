// Fuzz target for the export manifest parser of restore/ (`snapshot import` reads directories
// from shares that anyone may have written). A manifest that parses must encode and parse again
// to the same thing, and what it records about the VM (its point description, which an imported
// point keeps) must make a VM definition or a clear error, never an exception.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "restore/export.h"
#include "restore/restore.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto parsed = sp::restore::ParseExportManifest(text);
  if (!parsed.ok()) return 0;
  std::string encoded = sp::restore::EncodeExportManifest(*parsed);
  auto again = sp::restore::ParseExportManifest(encoded);
  if (!again.ok() || sp::restore::EncodeExportManifest(*again) != encoded) std::abort();
  sp::repo::Manifest point;
  point.id = parsed->point_id;
  point.point_description = parsed->point_description;
  for (const auto& volume : parsed->volumes) {
    sp::repo::ManifestVolume entry;
    entry.name = volume.name;
    entry.size = volume.size;
    point.volumes.push_back(entry);
  }
  auto draft =
      sp::restore::DraftFromPoint(point, "fuzz", "/nonexistent", sp::restore::ImageFormat::kQcow2,
                                  [](const std::string&) -> sp::StatusOr<bool> { return false; });
  (void)draft;
  (void)sp::restore::LeftOutVolumes(point.point_description, {}, "the export");
  (void)sp::restore::BootVolumeName(point);
  return 0;
}
