// The `stillpoint` command.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "capture/thaw_guard.h"
#include "cli/context.h"
#include "cli/repo_commands.h"
#include "cli/restore_commands.h"
#include "cli/service_commands.h"
#include "cli/snapshot_commands.h"
#include "cli/usage.h"
#include "cli/vm_commands.h"
#include "vm/runtime.h"

namespace {

int Run(int argc, char** argv) {
  // A VM's monitor runs as a hidden command of this binary (see vm/runtime.h).
  // So does the thaw guard of a capture (see capture/thaw_guard.h).
  if (argc > 1 && std::string(argv[1]) == sp::vm::kMonitorCommand) sp::vm::MonitorMain(argc, argv);
  if (argc > 1 && std::string(argv[1]) == sp::capture::kThawGuardCommand) {
    sp::capture::ThawGuardMain(argc, argv);
  }
  sp::cli::Context context;
  CLI::App root("stillpoint: application-consistent snapshots of QEMU/KVM VMs", "stillpoint");
  root.require_subcommand(1);
  root.set_version_flag("--version", "stillpoint 0.1.0");
  // Each module's commands register here.
  sp::cli::RegisterVmCommands(root, context);
  sp::cli::RegisterSnapshotCommands(root, context);
  sp::cli::RegisterConfigCommands(root, context);
  sp::cli::RegisterRepoCommands(root, context);
  sp::cli::RegisterRestoreCommands(root, context);
  sp::cli::RegisterServiceCommands(root, context);
  try {
    root.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    // --help and --version end parsing with a "success" that CLI11 prints itself.
    if (error.get_exit_code() == 0) return root.exit(error);
    return sp::cli::ReportError(sp::cli::UsageError(root, error));
  }
  if (!context.action) return 0;
  sp::Status status = context.action();
  return status.ok() ? context.exit_code : sp::cli::ReportError(status);
}

}  // namespace

int main(int argc, char** argv) {
  // Errors are Statuses; an exception reaching here (from a library) is a bug, reported as one
  // rather than ending in std::terminate.
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    return sp::cli::ReportError(
        absl::InternalError(absl::StrCat("unexpected exception: ", error.what())));
  } catch (...) {
    return sp::cli::ReportError(absl::InternalError("unexpected exception"));
  }
}
