#include "tests/integration/guest.h"

#include <signal.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "platform/files.h"

namespace sp::testing {
namespace {

std::map<std::string, std::string> LoadGuestEnv() {
  std::string dir;
  if (const char* given = std::getenv("STILLPOINT_GUEST_DIR"); given && *given) {
    dir = given;
  } else {
    auto built = RunCommandOk(
        {"bash", "-c",
         std::string(STILLPOINT_SOURCE_DIR) + "/tests/guest/build-guest.sh 2>/dev/null"},
        Deadline::In(Millis(900'000)));
    if (!built.ok()) return {};
    dir = std::string(absl::StripTrailingAsciiWhitespace(*built));
    dir = dir.substr(dir.rfind('\n') == std::string::npos ? 0 : dir.rfind('\n') + 1);
  }
  std::map<std::string, std::string> env;
  std::ifstream in(dir + "/guest.env");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    std::string value = kv.second;
    if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
      value = value.substr(1, value.size() - 2);
    }
    env[kv.first] = value;
  }
  return env;
}

}  // namespace

const std::map<std::string, std::string>& GuestEnv() {
  static const auto* env = new std::map<std::string, std::string>(LoadGuestEnv());
  return *env;
}

std::string StillpointBinary() { return STILLPOINT_BINARY; }

GuestWorld::GuestWorld() {
  paths_.home = temp_.path() + "/home";
  paths_.catalog = paths_.home + "/catalog.db";
  paths_.run_root = temp_.path() + "/run";
  paths_.repo = paths_.home + "/repo";
  auto app = app::App::Open(paths_, StillpointBinary());
  if (app.ok()) app_ = std::move(app).value();
  auto catalog = catalog::Catalog::Open(paths_.catalog);
  if (!catalog.ok()) return;
  catalog_ = std::move(catalog).value();
  vm::RuntimeOptions options;
  options.monitor_program = StillpointBinary();
  options.catalog_path = paths_.catalog;
  options.run_root = paths_.run_root;
  runtime_ = std::make_unique<vm::Runtime>(catalog_.get(), std::move(options));
}

GuestWorld::~GuestWorld() {
  if (!app_ || !catalog_) return;
  auto vms = catalog_->ListVms();
  if (!vms.ok()) return;
  for (const auto& vm : *vms) {
    auto pid = runtime_->QemuPid(vm);
    if (pid.ok()) (void)SendSignal(*pid, SIGKILL);
    if (pid.ok()) (void)runtime_->WaitUntilStopped(vm, Deadline::In(Millis(10'000)));
  }
}

std::string GuestWorld::CopyImage(const std::string& key, const std::string& name) {
  std::string target = absl::StrCat(temp_.path(), "/", name);
  (void)RunCommandOk({"cp", "--sparse=always", GuestEnv().at(key), target},
                     Deadline::In(Millis(60'000)));
  return target;
}

StatusOr<catalog::VmRecord> GuestWorld::DefineGuest(const std::string& name, bool agent) {
  const auto& env = GuestEnv();
  if (env.empty()) return absl::FailedPreconditionError("the test guest could not be built");
  catalog::VmRecord draft;
  draft.name = name;
  draft.memory_mib = 256;
  draft.kernel = env.at("GUEST_KERNEL");
  draft.initrd = env.at("GUEST_INITRD");
  draft.append = env.at("GUEST_APPEND");
  draft.agent = agent;
  draft.volumes = {{"root", CopyImage("GUEST_ROOT_IMAGE", name + "-root.qcow2"), "", true,
                    env.at("GUEST_ROOT_SERIAL"), "", -1},
                   {"data", CopyImage("GUEST_DATA_IMAGE", name + "-data.qcow2"), "", false,
                    env.at("GUEST_DATA_SERIAL"), "", -1}};
  draft.nics = {{"", "none"}};
  return app_->DefineVm(draft);
}

StatusOr<double> GuestWorld::WaitForAgent(const catalog::VmRecord& vm, Millis timeout) {
  auto start = std::chrono::steady_clock::now();
  Deadline deadline = Deadline::In(timeout);
  SP_ASSIGN_OR_RETURN(auto agent, runtime_->ConnectAgent(vm));
  Status last = absl::DeadlineExceededError("no attempt");
  while (!deadline.Expired()) {
    last = agent->Ping(Millis(1000));
    if (last.ok()) return MillisSince(start);
    if (last.code() != absl::StatusCode::kDeadlineExceeded) return last;
  }
  return last;
}

StatusOr<catalog::VmRecord> GuestWorld::BootGuest(const std::string& name, Millis timeout) {
  auto vm = app_->GetVm(name);
  if (!vm.ok()) vm = DefineGuest(name);
  SP_RETURN_IF_ERROR(vm.status());
  SP_RETURN_IF_ERROR(app_->StartVm(name));
  SP_RETURN_IF_ERROR(WaitForAgent(*vm, timeout).status());
  return app_->GetVm(name);
}

StatusOr<qga::ExecResult> GuestWorld::Shell(const catalog::VmRecord& vm,
                                            const std::string& command) {
  SP_ASSIGN_OR_RETURN(auto agent, runtime_->ConnectAgent(vm));
  return agent->Run("/bin/sh", {"-c", command}, Millis(60'000));
}

StatusOr<CommandResult> GuestWorld::Cli(const std::vector<std::string>& args, Millis timeout,
                                        const std::vector<std::string>& env) {
  std::vector<std::string> argv = {"env", "STILLPOINT_HOME=" + paths_.home,
                                   "STILLPOINT_RUN_DIR=" + paths_.run_root};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.push_back(StillpointBinary());
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, Deadline::In(timeout));
}

}  // namespace sp::testing
