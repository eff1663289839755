// `stillpoint vm ...`: define, list, show, start, stop, kill, remove, attach, and `vm agent ...`.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"

namespace sp::cli {

void RegisterVmCommands(CLI::App& root, Context& context);

}  // namespace sp::cli
