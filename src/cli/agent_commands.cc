// `stillpoint vm agent ping|info|fsinfo|freeze|thaw|status|exec NAME`: admin access to a guest
// agent.
#include <iostream>

#include "absl/strings/str_join.h"
#include "cli/vm_commands.h"

namespace sp::cli {
namespace {

struct AgentArgs {
  std::string name;
  double timeout_s = 5;
};

using AgentWork = std::function<Status(qga::Client*, const catalog::VmRecord&, Millis, bool json)>;

void AddAgentCommand(CLI::App& agent_cmd, Context& context, const std::string& command,
                     const std::string& help, const AgentWork& work) {
  auto args = std::make_shared<AgentArgs>();
  CLI::App* sub = agent_cmd.add_subcommand(command, help);
  sub->add_option("name", args->name, "VM name or UUID")->required();
  sub->add_option("--timeout", args->timeout_s, "seconds to wait for the agent")
      ->capture_default_str();
  sub->add_flag("--json", context.json, "print JSON");
  sub->callback([args, work, &context] {
    context.action = [args, work, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(catalog::VmRecord vm, app->GetVm(args->name));
      Millis timeout(static_cast<int64_t>(args->timeout_s * 1000));
      SP_ASSIGN_OR_RETURN(auto agent, app->Agent(vm, timeout));
      return work(agent.get(), vm, timeout, context.json);
    };
  });
}

Status Ping(qga::Client* agent, const catalog::VmRecord& vm, Millis timeout, bool json) {
  auto start = std::chrono::steady_clock::now();
  SP_RETURN_IF_ERROR(agent->Ping(timeout));
  double ms = MillisSince(start);
  if (json) {
    PrintJson({{"vm", vm.name}, {"answered", true}, {"round_trip_ms", ms}});
  } else {
    std::cout << "guest agent of VM '" << vm.name << "' answered in " << static_cast<int>(ms)
              << " ms\n";
  }
  return absl::OkStatus();
}

Status Info(qga::Client* agent, const catalog::VmRecord& vm, Millis timeout, bool json) {
  SP_ASSIGN_OR_RETURN(qga::AgentInfo info, agent->Info(timeout));
  bool can_freeze = info.Supports("guest-fsfreeze-freeze");
  if (json) {
    PrintJson({{"vm", vm.name},
               {"version", info.version},
               {"can_freeze", can_freeze},
               {"enabled_commands", info.enabled_commands}});
  } else {
    std::cout << "version:          " << info.version << "\n"
              << "can freeze:       " << (can_freeze ? "yes" : "no") << "\n"
              << "enabled commands: " << info.enabled_commands.size() << "\n  "
              << absl::StrJoin(info.enabled_commands, "\n  ") << "\n";
  }
  return absl::OkStatus();
}

Status Fsinfo(qga::Client* agent, const catalog::VmRecord& vm, Millis timeout, bool json) {
  SP_ASSIGN_OR_RETURN(auto filesystems, agent->GetFsinfo(timeout));
  auto mapped = vm::MapFilesystems(vm, filesystems);
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& fs : mapped) {
      out.push_back({{"mountpoint", fs.mountpoint},
                     {"type", fs.type},
                     {"guest_device", fs.guest_device},
                     {"volumes", fs.volumes},
                     {"matched_by", fs.matched_by}});
    }
    PrintJson(out);
    return absl::OkStatus();
  }
  Table table({"MOUNTPOINT", "TYPE", "GUEST DEVICE", "VOLUME", "MATCHED BY"});
  for (const auto& fs : mapped) {
    table.AddRow({fs.mountpoint, fs.type, fs.guest_device,
                  fs.volumes.empty() ? "?" : absl::StrJoin(fs.volumes, ","), fs.matched_by});
  }
  std::cout << table.Render();
  return absl::OkStatus();
}

Status Freeze(qga::Client* agent, const catalog::VmRecord& vm, Millis timeout, bool json) {
  auto start = std::chrono::steady_clock::now();
  SP_ASSIGN_OR_RETURN(int count, agent->Freeze(timeout));
  double ms = MillisSince(start);
  if (json) {
    PrintJson({{"vm", vm.name}, {"frozen_filesystems", count}, {"ms", ms}});
  } else {
    std::cout << count << " filesystem(s) of VM '" << vm.name << "' frozen in "
              << static_cast<int>(ms) << " ms; thaw with `stillpoint vm agent thaw " << vm.name
              << "`\n";
  }
  return absl::OkStatus();
}

Status Thaw(qga::Client* agent, const catalog::VmRecord& vm, Millis timeout, bool json) {
  auto start = std::chrono::steady_clock::now();
  SP_ASSIGN_OR_RETURN(int count, agent->Thaw(timeout));
  double ms = MillisSince(start);
  if (json) {
    PrintJson({{"vm", vm.name}, {"thawed_filesystems", count}, {"ms", ms}});
  } else {
    std::cout << count << " filesystem(s) of VM '" << vm.name << "' thawed\n";
  }
  return absl::OkStatus();
}

Status FreezeStatus(qga::Client* agent, const catalog::VmRecord& vm, Millis timeout, bool json) {
  SP_ASSIGN_OR_RETURN(qga::FreezeState state, agent->FreezeStatus(timeout));
  std::string text = state == qga::FreezeState::kFrozen ? "frozen" : "thawed";
  if (json) {
    PrintJson({{"vm", vm.name}, {"freeze_status", text}});
  } else {
    std::cout << "filesystems of VM '" << vm.name << "' are " << text << "\n";
  }
  return absl::OkStatus();
}

struct ExecArgs {
  std::string name;
  std::vector<std::string> command;
  double timeout_s = 60;
};

// `vm agent exec NAME -- CMD...`: runs a command in the guest (guest-exec), prints its output and
// exits with its exit code (1 when it was killed by a signal).
void AddExec(CLI::App& agent_cmd, Context& context) {
  auto args = std::make_shared<ExecArgs>();
  CLI::App* exec = agent_cmd.add_subcommand("exec", "Run a command in the guest (admin use)");
  exec->add_option("name", args->name, "VM name or UUID")->required();
  exec->add_option("command", args->command, "program and arguments, after --")->required();
  exec->add_option("--timeout", args->timeout_s, "seconds the command may run")
      ->capture_default_str();
  exec->add_flag("--json", context.json, "print JSON");
  exec->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(catalog::VmRecord vm, app->GetVm(args->name));
      Millis timeout(static_cast<int64_t>(args->timeout_s * 1000));
      SP_ASSIGN_OR_RETURN(auto agent, app->Agent(vm, Millis(10'000)));
      std::vector<std::string> rest(args->command.begin() + 1, args->command.end());
      SP_ASSIGN_OR_RETURN(qga::ExecResult result, agent->Run(args->command[0], rest, timeout));
      if (context.json) {
        PrintJson({{"vm", vm.name},
                   {"exit_code", result.exit_code},
                   {"signal", result.signal},
                   {"stdout", result.out},
                   {"stderr", result.err}});
      } else {
        std::cout << result.out << std::flush;
        std::cerr << result.err << std::flush;
      }
      // The guest command's exit code becomes stillpoint's (1 when a signal ended it).
      context.exit_code = result.exit_code == 0 ? 0 : result.exit_code > 0 ? result.exit_code : 1;
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterAgentCommands(CLI::App& vm_cmd, Context& context) {
  CLI::App* agent = vm_cmd.add_subcommand("agent", "Talk to a running VM's guest agent");
  agent->require_subcommand(1);
  AddAgentCommand(*agent, context, "ping", "Check that the guest agent answers", Ping);
  AddAgentCommand(*agent, context, "info", "Agent version and enabled commands", Info);
  AddAgentCommand(*agent, context, "fsinfo", "Guest filesystems and the volumes they are on",
                  Fsinfo);
  AddAgentCommand(*agent, context, "freeze", "Freeze the guest's filesystems (admin use)", Freeze);
  AddAgentCommand(*agent, context, "thaw", "Thaw the guest's filesystems", Thaw);
  AddAgentCommand(*agent, context, "status", "Whether the guest's filesystems are frozen",
                  FreezeStatus);
  AddExec(*agent, context);
}

}  // namespace sp::cli
