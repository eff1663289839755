// Disk images as QEMU sees them, through `qemu-img info`.
#pragma once

#include <cstdint>
#include <string>

#include "platform/status.h"

namespace sp::vm {

struct ImageInfo {
  std::string format;         // "qcow2", "raw", ...
  uint64_t virtual_size = 0;  // bytes the guest sees
};

// Inspects the image at `path`. NotFound when it does not exist; FailedPrecondition when another
// process (a running QEMU) holds the image's lock — the message says so and what to do.
StatusOr<ImageInfo> InspectImage(const std::string& path);

}  // namespace sp::vm
