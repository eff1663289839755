// Fuzz target: the decoder of a recovery point's description (consistency, volumes, the VM
// configuration a restore makes a VM of), in both layouts. Whatever JSON it is given, it returns a
// description or an error, never throws; what decodes encodes and decodes again to the same.
#include <cstddef>
#include <cstdint>

#include "repo/point_description.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* begin = reinterpret_cast<const char*>(data);
  auto value = nlohmann::json::parse(begin, begin + size, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return 0;
  for (auto layout :
       {sp::repo::DescriptionLayout::kCurrent, sp::repo::DescriptionLayout::kVersion1Extras}) {
    auto description = sp::repo::DecodePointDescription(value, "fuzz", layout);
    if (!description.ok()) continue;
    auto again =
        sp::repo::DecodePointDescription(sp::repo::EncodePointDescription(*description), "fuzz");
    if (!again.ok() || !(*again == *description)) __builtin_trap();
    for (const auto& volume : description->volumes) (void)description->FindVolume(volume.name);
  }
  return 0;
}
