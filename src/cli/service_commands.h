// `stillpoint serve`, `user`, `token` and `schedule`.
#pragma once

#include <CLI/CLI.hpp>

#include "cli/context.h"

namespace sp::cli {

void RegisterServiceCommands(CLI::App& root, Context& context);
void RegisterScheduleCommands(CLI::App& root, Context& context);

}  // namespace sp::cli
