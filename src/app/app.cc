#include "app/app.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "platform/environment.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "vm/attach.h"
#include "vm/machine.h"

namespace sp::app {

using catalog::PowerState;
using catalog::VmRecord;

StatusOr<StatePaths> ResolveStatePaths() {
  StatePaths paths;
  if (std::optional<std::string> home = GetEnv("STILLPOINT_HOME")) {
    paths.home = AbsolutePath(*home);
  } else if (::geteuid() == 0) {
    paths.home = "/var/lib/stillpoint";
  } else if (std::optional<std::string> user_home = GetEnv("HOME")) {
    paths.home = absl::StrCat(*user_home, "/.local/share/stillpoint");
  } else {
    return absl::FailedPreconditionError("cannot tell where to keep state: set STILLPOINT_HOME");
  }
  paths.catalog = paths.home + "/catalog.db";
  paths.repo = paths.home + "/repo";
  std::optional<std::string> run_dir = GetEnv("STILLPOINT_RUN_DIR");
  paths.run_root = run_dir ? AbsolutePath(*run_dir) : paths.home + "/run";
  SP_RETURN_IF_ERROR(MakeDirs(paths.home, 0700));
  SP_RETURN_IF_ERROR(MakeDirs(paths.run_root, 0700));
  return paths;
}

App::App(StatePaths paths, std::unique_ptr<catalog::Catalog> catalog,
         const std::string& monitor_program)
    : paths_(std::move(paths)), catalog_(std::move(catalog)), monitor_program_(monitor_program) {
  vm::RuntimeOptions options;
  options.monitor_program = monitor_program;
  options.catalog_path = paths_.catalog;
  options.run_root = paths_.run_root;
  runtime_ = std::make_unique<vm::Runtime>(catalog_.get(), std::move(options));
}

StatusOr<std::unique_ptr<App>> App::Open() {
  SP_ASSIGN_OR_RETURN(StatePaths paths, ResolveStatePaths());
  return Open(paths);
}

StatusOr<std::unique_ptr<App>> App::Open(const StatePaths& paths,
                                         const std::string& monitor_program, Clock* clock) {
  SP_RETURN_IF_ERROR(MakeDirs(paths.home, 0700));
  SP_RETURN_IF_ERROR(MakeDirs(paths.run_root, 0700));
  SP_ASSIGN_OR_RETURN(auto catalog, catalog::Catalog::Open(paths.catalog, clock));
  return std::unique_ptr<App>(new App(paths, std::move(catalog), monitor_program));
}

StatusOr<VmRecord> App::DefineVm(VmRecord draft) {
  if (draft.uuid.empty()) draft.uuid = vm::NewUuid();
  draft.origin = "managed";
  draft.state = PowerState::kDefined;
  SP_RETURN_IF_ERROR(vm::ValidateDefinition(&draft));
  SP_RETURN_IF_ERROR(runtime_->PathsFor(draft).status());
  for (catalog::NicRecord& nic : draft.nics) {
    if (!nic.mac.empty()) continue;
    SP_ASSIGN_OR_RETURN(nic.mac, vm::GenerateMac([&](const std::string& mac) -> StatusOr<bool> {
                          for (const auto& other : draft.nics) {
                            if (other.mac == mac) return true;
                          }
                          return catalog_->MacInUse(mac);
                        }));
  }
  SP_ASSIGN_OR_RETURN(int64_t id, catalog_->AddVm(draft));
  SP_ASSIGN_OR_RETURN(VmRecord stored, catalog_->GetVm(id));
  (void)catalog_->AddEvent(&stored, "vm.defined", "defined");
  return stored;
}

StatusOr<VmRecord> App::AttachVm(const AttachRequest& request) {
  VmRecord draft;
  draft.name = request.name;
  draft.uuid = vm::NewUuid();
  draft.origin = "attached";
  draft.policy = request.policy;
  draft.qmp_socket = AbsolutePath(request.qmp_socket);
  draft.qga_socket = request.qga_socket.empty() ? "" : AbsolutePath(request.qga_socket);
  draft.agent = !request.qga_socket.empty();
  if (catalog_->FindVm(draft.name).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("a VM named '", draft.name, "' already exists; choose another name"));
  }
  SP_ASSIGN_OR_RETURN(
      auto qmp, qmp::Client::Connect(draft.qmp_socket, absl::StrCat("VM '", draft.name, "'")));
  SP_ASSIGN_OR_RETURN(nlohmann::json uuid, qmp->Execute("query-uuid"));
  std::string qemu_uuid = uuid.value("UUID", "");
  if (!qemu_uuid.empty() && qemu_uuid != "00000000-0000-0000-0000-000000000000") {
    draft.uuid = qemu_uuid;
  }
  SP_ASSIGN_OR_RETURN(draft.volumes, vm::DiscoverVolumes(qmp.get(), request.boot_volume));
  draft.state = PowerState::kRunning;
  draft.state_reason = "attached while running";
  SP_ASSIGN_OR_RETURN(int64_t id, catalog_->AddVm(draft));
  SP_ASSIGN_OR_RETURN(VmRecord stored, catalog_->GetVm(id));
  (void)catalog_->AddEvent(&stored, "vm.attached",
                           absl::StrCat("attached through ", draft.qmp_socket, " with ",
                                        draft.volumes.size(), " disk(s)"));
  return stored;
}

StatusOr<VmRecord> App::GetVm(const std::string& name) {
  SP_ASSIGN_OR_RETURN(VmRecord vm, catalog_->FindVm(name));
  return runtime_->Refresh(vm);
}

StatusOr<std::vector<VmRecord>> App::ListVms() {
  SP_ASSIGN_OR_RETURN(std::vector<VmRecord> vms, catalog_->ListVms());
  for (VmRecord& vm : vms) {
    SP_ASSIGN_OR_RETURN(vm, runtime_->Refresh(vm));
  }
  return vms;
}

Status App::RemoveVm(const std::string& name) {
  SP_ASSIGN_OR_RETURN(VmRecord vm, GetVm(name));
  if (vm.state == PowerState::kRunning && vm.origin == "managed") {
    return absl::FailedPreconditionError(absl::StrCat(
        "VM '", vm.name, "' is running; stop it first (`stillpoint vm stop ", vm.name, "`)"));
  }
  SP_RETURN_IF_ERROR(catalog_->RemoveVm(vm.id));
  (void)catalog_->AddEvent(&vm, "vm.removed", "removed from the catalog; its images were kept");
  if (vm.origin == "managed") {
    auto paths = runtime_->PathsFor(vm);
    if (paths.ok()) (void)RemoveTree(paths->dir);
  }
  return absl::OkStatus();
}

Status App::StartVm(const std::string& name) {
  SP_ASSIGN_OR_RETURN(VmRecord vm, catalog_->FindVm(name));
  return runtime_->Start(vm);
}

Status App::StopVm(const std::string& name, Millis timeout) {
  SP_ASSIGN_OR_RETURN(VmRecord vm, catalog_->FindVm(name));
  return runtime_->Stop(vm, timeout);
}

Status App::KillVm(const std::string& name) {
  SP_ASSIGN_OR_RETURN(VmRecord vm, catalog_->FindVm(name));
  return runtime_->Kill(vm);
}

StatusOr<std::unique_ptr<qga::Client>> App::Agent(const VmRecord& vm, Millis timeout) {
  if (vm.state != PowerState::kRunning) {
    return absl::FailedPreconditionError(absl::StrCat("VM '", vm.name, "' is not running (",
                                                      catalog::PowerStateName(vm.state), ")"));
  }
  return runtime_->ConnectAgent(vm, timeout);
}

StatusOr<std::vector<vm::MountedFilesystem>> App::GuestFilesystems(const std::string& name,
                                                                   Millis timeout) {
  SP_ASSIGN_OR_RETURN(VmRecord vm, GetVm(name));
  SP_ASSIGN_OR_RETURN(auto agent, Agent(vm, timeout));
  SP_ASSIGN_OR_RETURN(auto filesystems, agent->GetFsinfo(timeout));
  return vm::MapFilesystems(vm, filesystems);
}

const std::vector<std::pair<std::string, std::string>>& App::SettingDefaults() {
  static const auto* defaults = new std::vector<std::pair<std::string, std::string>>{
      {"snapshots.enabled", "true"},
      {"capture.freeze_deadline_ms", "5000"},
      {"capture.agent_timeout_ms", "2000"},
  };
  return *defaults;
}

StatusOr<std::string> App::GetSetting(const std::string& key) {
  for (const auto& [known, fallback] : SettingDefaults()) {
    if (known != key) continue;
    SP_ASSIGN_OR_RETURN(std::optional<std::string> value, catalog_->GetSetting(key));
    return value.value_or(fallback);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown setting '", key, "'; `stillpoint config list` shows them"));
}

Status App::SetSetting(const std::string& key, const std::string& value) {
  SP_RETURN_IF_ERROR(GetSetting(key).status());
  if (key == "snapshots.enabled" && value != "true" && value != "false") {
    return absl::InvalidArgumentError("snapshots.enabled takes true or false");
  }
  if (absl::EndsWith(key, "_ms")) {
    int64_t ms = 0;
    if (!absl::SimpleAtoi(value, &ms) || ms < 100 || ms > 600'000) {
      return absl::InvalidArgumentError(absl::StrCat(key, " takes milliseconds, 100..600000"));
    }
  }
  SP_RETURN_IF_ERROR(catalog_->SetSetting(key, value));
  (void)catalog_->AddEvent(nullptr, "config.set", absl::StrCat(key, " = ", value));
  return absl::OkStatus();
}

// Commands started together on a fresh state directory all find no repository: each builds one
// in a private directory and renames it into place; the first rename wins, the others drop
// theirs and open the winner's. A crash leaves no half-made repository where it is looked for.
Status App::CreateDefaultRepo() {
  SP_ASSIGN_OR_RETURN(bool created,
                      repo::Repository::InitAtomically(paths_.repo, repo::InitOptions{}));
  if (created) {
    (void)catalog_->AddEvent(nullptr, "repo.created",
                             absl::StrCat("default repository created at ", paths_.repo));
  }
  return absl::OkStatus();
}

StatusOr<repo::Repository*> App::Repo() {
  if (repo_) return repo_.get();
  repo::OpenOptions options;
  options.key_file = GetEnv("STILLPOINT_KEY_FILE").value_or("");
  auto opened = repo::Repository::Open(paths_.repo, options);
  if (opened.status().code() == absl::StatusCode::kNotFound) {
    SP_RETURN_IF_ERROR(CreateDefaultRepo());
    opened = repo::Repository::Open(paths_.repo, options);
  }
  SP_RETURN_IF_ERROR(opened.status());
  repo_ = std::move(opened).value();
  return repo_.get();
}

StatusOr<capture::CaptureResult> App::CreateSnapshot(capture::CaptureRequest request,
                                                     const capture::ProgressFn& progress) {
  SP_ASSIGN_OR_RETURN(std::string enabled, GetSetting("snapshots.enabled"));
  if (enabled != "true") {
    return absl::FailedPreconditionError(
        "snapshots are disabled system-wide; `stillpoint config set snapshots.enabled true` "
        "enables them");
  }
  int64_t deadline_ms = 0, agent_ms = 0;
  SP_ASSIGN_OR_RETURN(std::string deadline, GetSetting("capture.freeze_deadline_ms"));
  SP_ASSIGN_OR_RETURN(std::string agent, GetSetting("capture.agent_timeout_ms"));
  if (absl::SimpleAtoi(deadline, &deadline_ms) && request.freeze_deadline == Millis(0)) {
    request.freeze_deadline = Millis(deadline_ms);
  }
  if (absl::SimpleAtoi(agent, &agent_ms)) request.agent_timeout = Millis(agent_ms);
  SP_ASSIGN_OR_RETURN(repo::Repository * repo, Repo());
  capture::CaptureContext context;
  context.catalog = catalog_.get();
  context.runtime = runtime_.get();
  context.repo = repo;
  context.catalog_path = paths_.catalog;
  context.program = monitor_program_;
  return capture::CaptureVm(context, request, progress);
}

}  // namespace sp::app
