// How the CLI speaks: tables for people, JSON for scripts, errors that say what to do, and exit
// codes that mean something (see ExitCodeFor).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "platform/status.h"

namespace sp::cli {

// Exit codes: 0 success; 1 other failure; 2 bad usage or invalid argument; 3 not found;
// 4 wrong state (e.g. VM running); 5 timed out; 6 already exists; 7 peer unavailable
// (QEMU or agent gone); 8 data corrupt.
int ExitCodeFor(const Status& status);

// Prints "stillpoint: error: <message>" to stderr and returns the exit code.
int ReportError(const Status& status);

// A plain text table: column headers, then rows, aligned.
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

void PrintJson(const nlohmann::json& value);

// "512M", "4G", "1.5T", "1048576" → bytes. InvalidArgument names the bad text.
StatusOr<int64_t> ParseSize(const std::string& text);
// 1536 → "1.5 KiB".
std::string FormatBytes(int64_t bytes);

// A command's work: runs after the command line was parsed.
using Action = std::function<Status()>;

}  // namespace sp::cli
