// What every command of the CLI shares: the application (opened on first use, so that --help
// touches nothing), output mode, and the action the parsed command line selected.
#pragma once

#include <memory>

#include "app/app.h"
#include "cli/output.h"

namespace sp::cli {

class Context {
 public:
  // The application over the state directory; opened once, on first use.
  StatusOr<app::App*> App() {
    if (!app_) {
      SP_ASSIGN_OR_RETURN(app_, app::App::Open());
    }
    return app_.get();
  }

  bool json = false;  // --json: machine-readable output on stdout
  Action action;      // set by the selected subcommand's callback
  // The process's exit code when `action` returned OK: set by a command that passes another
  // program's on (`vm agent exec`).
  int exit_code = 0;

 private:
  std::unique_ptr<app::App> app_;
};

}  // namespace sp::cli
