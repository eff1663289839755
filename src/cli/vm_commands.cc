#include "cli/vm_commands.h"

#include <iostream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/usage.h"

namespace sp::cli {
namespace {

using catalog::VmRecord;

constexpr char kVolumeUsage[] =
    "name=NAME,path=IMAGE[,format=qcow2|raw][,serial=S][,boot]; quote a value that holds a comma, "
    "e.g. path=\"/srv/a,b.qcow2\"";

// A part of an option's spec that is not one of its keys. A bare word right after a value is most
// likely the rest of that value, cut at a comma: say how to quote it.
Status UnknownPart(const char* option, const std::string& spec, const std::string& key,
                   const std::string& value, const char* usage) {
  std::string part = value.empty() ? key : absl::StrCat(key, "=", value);
  std::string hint =
      value.empty() ? " (if it is part of the value before it, which holds a comma, quote that "
                      "value)"
                    : "";
  return absl::InvalidArgumentError(
      absl::StrCat(option, " '", spec, "': unknown part '", part, "'", hint, "; write ", usage));
}

// "name=root,path=/img/root.qcow2,format=qcow2,boot,serial=S" → a volume. A value holding a
// comma is quoted: path="/img/a,b.qcow2".
StatusOr<catalog::VolumeRecord> ParseVolume(const std::string& spec) {
  catalog::VolumeRecord volume;
  SP_ASSIGN_OR_RETURN(auto parts, SplitSpec("--volume", spec));
  for (const auto& [key, value] : parts) {
    if (key == "name")
      volume.name = value;
    else if (key == "path")
      volume.path = value;
    else if (key == "format")
      volume.format = value;
    else if (key == "serial")
      volume.serial = value;
    else if (key == "boot" && value.empty())
      volume.boot = true;
    else
      return UnknownPart("--volume", spec, key, value, kVolumeUsage);
  }
  if (volume.name.empty() || volume.path.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--volume '", spec, "' needs name= and path= (e.g. name=root,path=root.qcow2,boot)"));
  }
  return volume;
}

// "network=user[,mac=52:54:00:..]" or "none" → a NIC (or nothing).
StatusOr<std::optional<catalog::NicRecord>> ParseNic(const std::string& spec) {
  if (spec == "none") return std::optional<catalog::NicRecord>();
  catalog::NicRecord nic{"", "user"};
  SP_ASSIGN_OR_RETURN(auto parts, SplitSpec("--nic", spec));
  for (const auto& [key, value] : parts) {
    if (key == "network")
      nic.network = value;
    else if (key == "mac")
      nic.mac = value;
    else
      return UnknownPart("--nic", spec, key, value, "network=user|none[,mac=MAC]");
  }
  return std::optional<catalog::NicRecord>(nic);
}

std::string StateText(const VmRecord& vm) {
  std::string text = catalog::PowerStateName(vm.state);
  if (vm.state == catalog::PowerState::kStoppedClean ||
      vm.state == catalog::PowerState::kStoppedDirty || vm.state == catalog::PowerState::kStopped) {
    absl::StrAppend(&text, ": ", vm.state_reason);
  }
  return text;
}

void PrintVm(const VmRecord& vm, const std::optional<repo::VmUsage>& usage,
             const std::vector<catalog::EventRecord>& events) {
  std::cout << "name:        " << vm.name << "\n"
            << "uuid:        " << vm.uuid << "\n"
            << "origin:      " << vm.origin << "\n"
            << "state:       " << catalog::PowerStateName(vm.state)
            << (vm.state_reason.empty() ? "" : " — " + vm.state_reason) << "\n"
            << "since:       " << FormatUnixMicros(vm.state_changed_us) << "\n"
            << "vcpus:       " << vm.vcpus << "\n"
            << "memory:      " << vm.memory_mib << " MiB\n"
            << "firmware:    " << vm.firmware << "\n"
            << "guest agent: " << (vm.agent ? "yes" : "no") << "\n"
            << "consistency: " << vm.policy << "\n"
            << "space used:  "
            << (usage ? absl::StrCat(FormatBytes(static_cast<int64_t>(usage->stored_bytes)), " by ",
                                     usage->points, " recovery point(s)")
                      : "unknown")
            << "\n"
            << "space limit: "
            << (vm.space_limit_bytes ? FormatBytes(*vm.space_limit_bytes) : "none") << "\n";
  if (!vm.kernel.empty()) std::cout << "kernel:      " << vm.kernel << " " << vm.append << "\n";
  Table volumes({"VOLUME", "BOOT", "FORMAT", "SERIAL", "NODE", "PATH"});
  for (const auto& volume : vm.volumes) {
    volumes.AddRow({volume.name, volume.boot ? "yes" : "", volume.format, volume.serial,
                    volume.node_name, volume.path});
  }
  std::cout << "\n" << volumes.Render();
  if (!vm.nics.empty()) {
    Table nics({"MAC", "NETWORK"});
    for (const auto& nic : vm.nics) nics.AddRow({nic.mac, nic.network});
    std::cout << "\n" << nics.Render();
  }
  if (!events.empty()) {
    Table table({"TIME", "EVENT", "MESSAGE"});
    for (const auto& event : events) {
      table.AddRow({FormatUnixMicros(event.time_us), event.kind, event.message});
    }
    std::cout << "\nrecent events:\n" << table.Render();
  }
}

struct DefineArgs {
  VmRecord vm;
  std::vector<std::string> volumes;
  std::vector<std::string> nics;
  std::string memory = "512M";
  bool no_agent = false;
};

void AddDefine(CLI::App& vm_cmd, Context& context) {
  auto args = std::make_shared<DefineArgs>();
  CLI::App* define = vm_cmd.add_subcommand("define", "Define a VM that stillpoint launches");
  define->add_option("name", args->vm.name, "VM name (unique)")->required();
  define
      ->add_option("--volume", args->volumes,
                   "name=NAME,path=IMAGE[,format=qcow2|raw][,serial=S][,boot] (repeatable; "
                   "exactly one boot)")
      ->required();
  define->add_option("--vcpus", args->vm.vcpus, "virtual CPUs")->capture_default_str();
  define->add_option("--memory", args->memory, "memory, e.g. 512M or 2G")->capture_default_str();
  define->add_option("--firmware", args->vm.firmware, "bios or uefi")->capture_default_str();
  define->add_option("--kernel", args->vm.kernel, "direct kernel boot: kernel image");
  define->add_option("--initrd", args->vm.initrd, "direct kernel boot: initrd");
  define->add_option("--append", args->vm.append, "direct kernel boot: kernel command line");
  define->add_option("--nic", args->nics,
                     "network=user|none[,mac=MAC] (repeatable; default one user NIC; 'none' "
                     "for no NIC)");
  define->add_flag("--no-agent", args->no_agent, "the VM has no guest-agent channel");
  define->add_option("--policy", args->vm.policy, "require-app, prefer-app or crash-only")
      ->capture_default_str();
  define->add_flag("--json", context.json, "print the VM as JSON");
  define->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      VmRecord draft = args->vm;
      draft.agent = !args->no_agent;
      SP_ASSIGN_OR_RETURN(int64_t memory, ParseSize(args->memory));
      draft.memory_mib = memory / (int64_t{1024} * 1024);
      for (const std::string& spec : args->volumes) {
        SP_ASSIGN_OR_RETURN(catalog::VolumeRecord volume, ParseVolume(spec));
        draft.volumes.push_back(std::move(volume));
      }
      std::vector<std::string> nic_specs = args->nics;
      if (nic_specs.empty()) nic_specs.push_back("network=user");
      for (const std::string& spec : nic_specs) {
        SP_ASSIGN_OR_RETURN(auto nic, ParseNic(spec));
        if (nic) draft.nics.push_back(*nic);
      }
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(VmRecord vm, app->DefineVm(std::move(draft)));
      if (context.json) {
        PrintJson(app::VmToJson(vm));
      } else {
        std::cout << "defined VM '" << vm.name << "' (" << vm.uuid << "); start it with "
                  << "`stillpoint vm start " << vm.name << "`\n";
      }
      return absl::OkStatus();
    };
  });
}

void AddListShow(CLI::App& vm_cmd, Context& context) {
  CLI::App* list = vm_cmd.add_subcommand("list", "List VMs and their power state");
  list->add_flag("--json", context.json, "print JSON");
  list->callback([&context] {
    context.action = [&context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto vms, app->ListVms());
      if (context.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& vm : vms) out.push_back(app::VmToJson(vm));
        PrintJson(out);
        return absl::OkStatus();
      }
      Table table({"NAME", "STATE", "ORIGIN", "VCPUS", "MEMORY", "VOLUMES", "UUID"});
      for (const auto& vm : vms) {
        std::vector<std::string> names;
        for (const auto& volume : vm.volumes) names.push_back(volume.name);
        table.AddRow({vm.name, StateText(vm), vm.origin, absl::StrCat(vm.vcpus),
                      absl::StrCat(vm.memory_mib, " MiB"), absl::StrJoin(names, ","), vm.uuid});
      }
      std::cout << table.Render();
      return absl::OkStatus();
    };
  });

  auto name = std::make_shared<std::string>();
  CLI::App* show = vm_cmd.add_subcommand("show", "Show a VM in full, with recent events");
  show->add_option("name", *name, "VM name or UUID")->required();
  show->add_flag("--json", context.json, "print JSON");
  show->callback([name, &context] {
    context.action = [name, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(VmRecord vm, app->GetVm(*name));
      SP_ASSIGN_OR_RETURN(auto events, app->ListEvents(vm, 10));
      std::optional<repo::VmUsage> usage = app->SpaceUsage(vm);
      if (!context.json) {
        PrintVm(vm, usage, events);
        return absl::OkStatus();
      }
      PrintJson(app::VmDetailsJson(vm, usage, events));
      return absl::OkStatus();
    };
  });
}

// A subcommand that takes a VM name and runs `work` on it.
CLI::App* AddNamed(CLI::App& parent, Context& context, const std::string& command,
                   const std::string& help,
                   const std::function<Status(app::App*, const std::string&)>& work) {
  auto name = std::make_shared<std::string>();
  CLI::App* sub = parent.add_subcommand(command, help);
  sub->add_option("name", *name, "VM name or UUID")->required();
  sub->callback([name, work, &context] {
    context.action = [name, work, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      return work(app, *name);
    };
  });
  return sub;
}

void AddLifecycle(CLI::App& vm_cmd, Context& context) {
  AddNamed(vm_cmd, context, "start", "Start a defined VM",
           [](app::App* app, const std::string& name) {
             SP_RETURN_IF_ERROR(app->StartVm(name));
             std::cout << "VM '" << name << "' is running\n";
             return absl::OkStatus();
           });
  auto timeout = std::make_shared<int>(120);
  CLI::App* stop =
      AddNamed(vm_cmd, context, "stop", "Ask the guest to shut down (agent, else ACPI) and wait",
               [timeout](app::App* app, const std::string& name) -> Status {
                 SP_RETURN_IF_ERROR(app->StopVm(name, Millis(*timeout * 1000)));
                 SP_ASSIGN_OR_RETURN(VmRecord vm, app->GetVm(name));
                 std::cout << "VM '" << name << "' is " << StateText(vm) << "\n";
                 return absl::OkStatus();
               });
  stop->add_option("--timeout", *timeout, "seconds to wait for the guest")->capture_default_str();
  AddNamed(vm_cmd, context, "kill", "Force a VM off (like pulling the power cord)",
           [](app::App* app, const std::string& name) -> Status {
             SP_RETURN_IF_ERROR(app->KillVm(name));
             SP_ASSIGN_OR_RETURN(VmRecord vm, app->GetVm(name));
             std::cout << "VM '" << name << "' is " << StateText(vm) << "\n";
             return absl::OkStatus();
           });
  AddNamed(vm_cmd, context, "remove", "Forget a stopped VM (its images are kept)",
           [](app::App* app, const std::string& name) -> Status {
             SP_RETURN_IF_ERROR(app->RemoveVm(name));
             std::cout << "VM '" << name << "' removed; its images were kept\n";
             return absl::OkStatus();
           });
}

void AddAttach(CLI::App& vm_cmd, Context& context) {
  auto request = std::make_shared<app::AttachRequest>();
  CLI::App* attach = vm_cmd.add_subcommand(
      "attach", "Make a VM started by another tool (libvirt, Proxmox) known to stillpoint");
  attach->add_option("name", request->name, "name for the VM in stillpoint")->required();
  attach->add_option("--qmp", request->qmp_socket, "path of the VM's QMP unix socket")->required();
  attach->add_option("--qga", request->qga_socket, "path of the VM's guest-agent unix socket");
  attach->add_option("--boot-volume", request->boot_volume, "disk id of the boot disk");
  attach->add_option("--policy", request->policy, "require-app, prefer-app or crash-only");
  attach->add_flag("--json", context.json, "print the VM as JSON");
  attach->callback([request, &context] {
    context.action = [request, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(VmRecord vm, app->AttachVm(*request));
      if (context.json) {
        PrintJson(app::VmToJson(vm));
        return absl::OkStatus();
      }
      std::cout << "attached VM '" << vm.name << "' with " << vm.volumes.size() << " disk(s)\n";
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterAgentCommands(CLI::App& vm_cmd, Context& context);

void RegisterVmCommands(CLI::App& root, Context& context) {
  CLI::App* vm_cmd = root.add_subcommand("vm", "Define, run and inspect VMs");
  vm_cmd->require_subcommand(1);
  AddDefine(*vm_cmd, context);
  AddListShow(*vm_cmd, context);
  AddLifecycle(*vm_cmd, context);
  AddAttach(*vm_cmd, context);
  RegisterAgentCommands(*vm_cmd, context);
}

}  // namespace sp::cli
