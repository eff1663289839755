#include "repo/units.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace sp::repo {

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < sizeof(kUnits) / sizeof(kUnits[0])) {
    value /= 1024;
    ++unit;
  }
  // Two formats spelled out: StrFormat checks its format at compile time (clang insists).
  if (value < 10) return absl::StrFormat("%.2f %s", value, kUnits[unit]);
  return absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

StatusOr<uint64_t> ParseBytes(absl::string_view text) {
  std::string upper = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  absl::string_view rest = upper;
  if (absl::EndsWith(rest, "IB")) {
    rest.remove_suffix(2);
  } else if (absl::EndsWith(rest, "B")) {
    rest.remove_suffix(1);
  }
  int shift = 0;
  if (!rest.empty()) {
    switch (rest.back()) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      case 'P':
        shift = 50;
        break;
      default:
        break;
    }
    if (shift != 0) rest.remove_suffix(1);
  }
  uint64_t number = 0;
  if (!absl::SimpleAtoi(rest, &number) || number > (UINT64_MAX >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a size (examples: 500M, 20G, 1T, 1048576)"));
  }
  return number << shift;
}

}  // namespace sp::repo
