// Command-line usage errors in the house format, and the KEY=VALUE,... specs some options take.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>
#include <vector>

#include "platform/status.h"

namespace sp::cli {

// The parser's error `error` for the command line given to `root`, as InvalidArgument saying what
// was wrong and where the usage is, e.g. "--vcpus: 'two' is not a whole number (see `stillpoint
// vm define --help`)".
Status UsageError(CLI::App& root, const CLI::ParseError& error);

// Splits an option spec such as `name=root,path="/img/a,b.qcow2",boot` into its parts at the
// commas outside quotes, each as (key, value) with the value's quotes removed ("boot" → ("boot",
// "")). A value quoted (from its first character) with " or ' may hold commas. InvalidArgument
// (naming `option`) for an unterminated quote.
StatusOr<std::vector<std::pair<std::string, std::string>>> SplitSpec(const std::string& option,
                                                                     const std::string& spec);

}  // namespace sp::cli
