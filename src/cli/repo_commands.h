// `stillpoint repo init|info|stats|gc|prune|verify|rebuild-catalog`, `snapshot delete` and
// `vm set-limit`: the commands over the repository of recovery points.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"

namespace sp::cli {

// Adds the commands to `root`, reusing the `repo`, `snapshot` and `vm` subcommands when another
// module registered them already.
void RegisterRepoCommands(CLI::App& root, Context& context);

}  // namespace sp::cli
