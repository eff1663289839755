#include "cli/output.h"

#include <cstdio>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace sp::cli {

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 2;
    case absl::StatusCode::kNotFound:
      return 3;
    case absl::StatusCode::kFailedPrecondition:
      return 4;
    case absl::StatusCode::kResourceExhausted:
      return 9;
    case absl::StatusCode::kDeadlineExceeded:
      return 5;
    case absl::StatusCode::kAlreadyExists:
      return 6;
    case absl::StatusCode::kUnavailable:
      return 7;
    case absl::StatusCode::kDataLoss:
      return 8;
    default:
      return 1;
  }
}

int ReportError(const Status& status) {
  std::cerr << "stillpoint: error: " << status.message() << std::endl;
  return ExitCodeFor(status);
}

std::string Table::Render() const {
  std::vector<size_t> widths(headers_.size());
  for (size_t i = 0; i < headers_.size(); ++i) widths[i] = headers_[i].size();
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  auto append_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      if (i + 1 < widths.size()) cell.resize(widths[i], ' ');
      absl::StrAppend(&line, i ? "  " : "", cell);
    }
    absl::StrAppend(&out, absl::StripTrailingAsciiWhitespace(line), "\n");
  };
  append_row(headers_);
  for (const auto& row : rows_) append_row(row);
  return out;
}

void PrintJson(const nlohmann::json& value) { std::cout << value.dump(2) << std::endl; }

StatusOr<int64_t> ParseSize(const std::string& text) {
  std::string number = text;
  // Accept "4G", "4GB" and "4GiB" alike: all binary units.
  if (number.size() > 1 && (number.back() == 'B' || number.back() == 'b')) number.pop_back();
  if (number.size() > 1 && (number.back() == 'i' || number.back() == 'I')) number.pop_back();
  double factor = 1;
  if (!number.empty()) {
    char unit = static_cast<char>(std::toupper(static_cast<unsigned char>(number.back())));
    size_t power = std::string("KMGTP").find(unit);
    if (power != std::string::npos) {
      number.pop_back();
      for (size_t i = 0; i <= power; ++i) factor *= 1024;
    }
  }
  double value = 0;
  if (!absl::SimpleAtod(number, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a size; write e.g. 512M, 4G or 1.5T"));
  }
  return static_cast<int64_t>(value * factor);
}

std::string FormatBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(units)) {
    value /= 1024;
    ++unit;
  }
  if (unit == 0) return absl::StrCat(bytes, " B");
  return absl::StrFormat("%.1f %s", value, units[unit]);
}

}  // namespace sp::cli
