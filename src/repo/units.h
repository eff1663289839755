// Byte counts for people: "3.2 GiB" out, "4G" / "500M" / "1T" / "123" in.
#pragma once

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "platform/status.h"

namespace sp::repo {

// "0 B", "512 B", "4.0 MiB", "3.21 GiB" (binary units).
std::string FormatBytes(uint64_t bytes);
// Plain bytes or a number with a binary suffix K/M/G/T/P (optionally followed by "iB" or "B").
// InvalidArgument otherwise or on overflow.
StatusOr<uint64_t> ParseBytes(absl::string_view text);

}  // namespace sp::repo
