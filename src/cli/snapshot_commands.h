// `stillpoint snapshot create|list|show` and `stillpoint config list|get|set`.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"

namespace sp::cli {

void RegisterSnapshotCommands(CLI::App& root, Context& context);
void RegisterConfigCommands(CLI::App& root, Context& context);

}  // namespace sp::cli
