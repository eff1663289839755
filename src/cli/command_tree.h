// Commands of several modules share their parents ("vm", "snapshot"): each registration looks the
// parent up, or adds it.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace sp::cli {

// The subcommand `name` of `parent`, added (requiring one subcommand of its own) when missing.
inline CLI::App* FindOrAddSubcommand(CLI::App& parent, const std::string& name,
                                     const std::string& help) {
  for (CLI::App* existing : parent.get_subcommands({})) {
    if (existing->get_name() == name) return existing;
  }
  CLI::App* added = parent.add_subcommand(name, help);
  added->require_subcommand(1);
  return added;
}

}  // namespace sp::cli
