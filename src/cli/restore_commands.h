// `stillpoint vm create-from-snapshot|restore` and `stillpoint snapshot mount|export|import`:
// using recovery points (see restore/).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"

namespace sp::cli {

// Adds the commands under the `vm` and `snapshot` commands (created when not registered yet).
void RegisterRestoreCommands(CLI::App& root, Context& context);

}  // namespace sp::cli
