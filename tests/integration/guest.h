// Integration-test support: the real test guest (tests/guest/build-guest.sh), fresh copies of its
// images per test, a state directory per test, and the stillpoint binary.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "app/app.h"
#include "catalog/catalog.h"
#include "platform/process.h"
#include "platform/status.h"
#include "testing/temp_dir.h"
#include "vm/runtime.h"

namespace sp::testing {

// True when `part` occurs in `text`.
inline bool Contains(absl::string_view text, absl::string_view part) {
  return text.find(part) != absl::string_view::npos;
}

// The cached guest's facts (guest.env), building it if STILLPOINT_GUEST_DIR is not set.
const std::map<std::string, std::string>& GuestEnv();

// Path of the stillpoint binary under test.
std::string StillpointBinary();

// One test's world: a temp dir with a state directory, copies of the guest's images, and an App.
class GuestWorld {
 public:
  GuestWorld();
  ~GuestWorld();  // kills any QEMU this world started

  // Defines a managed VM on fresh copies of the guest's root and data images.
  StatusOr<catalog::VmRecord> DefineGuest(const std::string& name, bool agent = true);
  // Copies a guest image (root or data) into the world and returns its path.
  std::string CopyImage(const std::string& key, const std::string& name);

  // Waits until the VM's agent answers guest-ping; returns the milliseconds it took.
  StatusOr<double> WaitForAgent(const catalog::VmRecord& vm, Millis timeout);

  // Defines the guest VM `name` (unless it exists), starts it and waits for its agent.
  StatusOr<catalog::VmRecord> BootGuest(const std::string& name, Millis timeout);

  // Runs `command` with /bin/sh in the guest through its agent, connecting just for this call
  // (the agent serves one client at a time, and captures need it).
  StatusOr<qga::ExecResult> Shell(const catalog::VmRecord& vm, const std::string& command);

  // Runs the stillpoint CLI with this world's state directory (and `env`, NAME=VALUE each).
  StatusOr<CommandResult> Cli(const std::vector<std::string>& args,
                              Millis timeout = Millis(120'000),
                              const std::vector<std::string>& env = {});

  app::App& app() { return *app_; }
  // The world's catalog and VM runtime, for looking below the application: a connection and a
  // runtime of their own over the same state directory, as another process would have.
  catalog::Catalog& catalog() { return *catalog_; }
  vm::Runtime& runtime() { return *runtime_; }
  const std::string& dir() const { return temp_.path(); }
  const app::StatePaths& paths() const { return paths_; }

 private:
  TempDir temp_;
  app::StatePaths paths_;
  std::unique_ptr<app::App> app_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<vm::Runtime> runtime_;
};

}  // namespace sp::testing
