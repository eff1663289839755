#include "cli/restore_commands.h"

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <iostream>
#include <thread>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/command_tree.h"

namespace sp::cli {
namespace {

std::string Bytes(uint64_t bytes) { return FormatBytes(static_cast<int64_t>(bytes)); }

void PrintVolumes(const std::vector<restore::VolumeResult>& volumes) {
  for (const auto& volume : volumes) {
    std::cout << absl::StrFormat("  %-8s %s  (%s, %s written, %s left as holes, %.1f s)\n",
                                 volume.name, volume.path, Bytes(volume.stats.size),
                                 Bytes(volume.stats.data_bytes), Bytes(volume.stats.zero_bytes),
                                 volume.stats.millis / 1000);
  }
}

// Warnings go to stderr, so that stdout stays the result (and valid JSON with --json).
void PrintWarnings(const std::vector<std::string>& warnings) {
  for (const std::string& warning : warnings) {
    std::cerr << "stillpoint: warning: " << warning << "\n";
  }
}

struct CreateArgs {
  std::string point;
  std::string name;
  std::string dir;
  bool start = false;
};

void AddCreateFromSnapshot(CLI::App& vm_cmd, Context& context) {
  auto args = std::make_shared<CreateArgs>();
  CLI::App* create = vm_cmd.add_subcommand(
      "create-from-snapshot", "Make a new VM (new UUID and MACs) from a recovery point");
  create->add_option("snapshot", args->point, "recovery point id (or a unique prefix)")->required();
  create->add_option("--name", args->name, "name of the new VM")->required();
  create->add_option("--dir", args->dir,
                     "directory for its images (default: <state dir>/images/<name>)");
  create->add_flag("--start", args->start, "start the new VM");
  create->add_flag("--json", context.json, "print JSON");
  create->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(restore::NewVmResult result,
                          app->CreateVmFromSnapshot({args->point, args->name, args->dir}));
      PrintWarnings(result.warnings);
      if (args->start) SP_RETURN_IF_ERROR(app->StartVm(result.vm.name));
      if (context.json) {
        PrintJson(app::NewVmJson(result, args->start));
        return absl::OkStatus();
      }
      std::vector<std::string> macs;
      for (const auto& nic : result.vm.nics) macs.push_back(nic.mac);
      std::cout << "VM '" << result.vm.name << "' created from recovery point " << result.point_id
                << "\nuuid: " << result.vm.uuid
                << "\nmacs: " << (macs.empty() ? "(no NICs)" : absl::StrJoin(macs, ", "))
                << "\nvolumes:\n";
      PrintVolumes(result.volumes);
      if (args->start) std::cout << "started\n";
      return absl::OkStatus();
    };
  });
}

struct RestoreArgs {
  std::string vm;
  std::string point;
  std::vector<std::string> volumes;
};

void AddRestore(CLI::App& vm_cmd, Context& context) {
  auto args = std::make_shared<RestoreArgs>();
  CLI::App* restore = vm_cmd.add_subcommand(
      "restore", "Put a stopped VM's disks back to a recovery point, in place");
  restore->add_option("vm", args->vm, "VM name or UUID")->required();
  restore->add_option("snapshot", args->point, "recovery point id (or a unique prefix)")
      ->required();
  restore->add_option("--volume", args->volumes,
                      "restore only these volumes (repeatable; default: all in the point)");
  restore->add_flag("--json", context.json, "print JSON");
  restore->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(app::VmRestoreResult restored,
                          app->RestoreVm(args->vm, args->point, args->volumes));
      const catalog::VmRecord& vm = restored.vm;
      const restore::InPlaceResult& result = restored.restored;
      if (context.json) {
        PrintJson(app::RestoreJson(restored));
        return absl::OkStatus();
      }
      std::cout << "VM '" << vm.name << "' restored from recovery point " << result.point_id
                << ":\n";
      PrintVolumes(result.volumes);
      return absl::OkStatus();
    };
  });
}

volatile std::sig_atomic_t stop_requested = 0;
extern "C" void RequestStop(int) { stop_requested = 1; }

struct MountArgs {
  std::string point;
  std::string volume;
  std::string socket;
  int port = 0;
};

Status Mount(Context& context, const MountArgs& args) {
  struct sigaction action {};
  action.sa_handler = RequestStop;
  ::sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  SP_ASSIGN_OR_RETURN(app::App * app, context.App());
  SP_ASSIGN_OR_RETURN(app::MountedVolume mounted,
                      app->MountVolume({args.point, args.volume, args.socket, args.port}));
  const std::string& volume = mounted.volume;
  restore::VolumeServer* server = mounted.server.get();
  if (context.json) {
    PrintJson({{"point", mounted.point_id},
               {"volume", volume},
               {"uri", server->uri()},
               {"size", server->size()},
               {"read_only", true}});
  } else {
    std::cout << "serving volume '" << volume << "' of recovery point " << mounted.point_id
              << " read-only (" << Bytes(server->size()) << ")\n  " << server->uri()
              << "\n  e.g. qemu-img info '" << server->uri() << "'\n"
              << "Ctrl-C stops it." << std::endl;
  }
  while (stop_requested == 0) {
    if (!server->Running()) {
      return absl::UnavailableError("the NBD server (nbdkit) stopped unexpectedly");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  SP_RETURN_IF_ERROR(server->Stop());
  if (!context.json) std::cout << "stopped" << std::endl;
  return absl::OkStatus();
}

void AddMount(CLI::App& snapshot, Context& context) {
  auto args = std::make_shared<MountArgs>();
  CLI::App* mount = snapshot.add_subcommand(
      "mount", "Serve a volume of a recovery point read-only over NBD until Ctrl-C");
  mount->add_option("snapshot", args->point, "recovery point id (or a unique prefix)")->required();
  mount->add_option("--volume", args->volume, "volume to serve (default: the boot volume)");
  auto* socket = mount->add_option("--socket", args->socket,
                                   "unix socket to listen on (default: in the run directory)");
  mount->add_option("--port", args->port, "listen on this TCP port of 127.0.0.1 instead")
      ->excludes(socket)
      ->check(CLI::Range(1, 65535));
  mount->add_flag("--json", context.json, "print JSON");
  mount->callback([args, &context] {
    context.action = [args, &context]() -> Status { return Mount(context, *args); };
  });
}

struct ExportArgs {
  std::string point;
  std::string dir;
  std::string format = "qcow2";
  std::string mode = "0600";
  std::vector<std::string> volumes;
};

void AddExport(CLI::App& snapshot, Context& context) {
  auto args = std::make_shared<ExportArgs>();
  CLI::App* exp = snapshot.add_subcommand(
      "export", "Write a recovery point to a directory (images + manifest) for another host");
  exp->add_option("snapshot", args->point, "recovery point id (or a unique prefix)")->required();
  exp->add_option("dir", args->dir, "directory to write (e.g. on an NFS/SMB mount)")->required();
  exp->add_option("--format", args->format, "image format: qcow2 or raw")->capture_default_str();
  exp->add_option("--volume", args->volumes, "export only these volumes (repeatable)");
  exp->add_option("--mode", args->mode,
                  "mode of the files written, e.g. 0640 to let the group read them "
                  "(directories created get the matching x bits)")
      ->capture_default_str();
  exp->add_flag("--json", context.json, "print JSON");
  exp->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      restore::ExportRequest request;
      request.point_id = args->point;
      request.dir = args->dir;
      request.volumes = args->volumes;
      SP_ASSIGN_OR_RETURN(request.format, restore::ParseImageFormat(args->format));
      SP_ASSIGN_OR_RETURN(request.file_mode, restore::ParseExportMode(args->mode));
      SP_ASSIGN_OR_RETURN(restore::ExportResult result, app->ExportSnapshot(request));
      PrintWarnings(result.warnings);
      if (context.json) {
        PrintJson(app::ExportJson(args->dir, result));
        return absl::OkStatus();
      }
      std::cout << "recovery point " << result.manifest.point_id << " exported to " << args->dir
                << "\n";
      for (const auto& volume : result.manifest.volumes) {
        std::cout << absl::StrFormat("  %-8s %s  %s, file %s, sha256 %s\n", volume.name,
                                     volume.file, Bytes(volume.size), Bytes(volume.file_bytes),
                                     volume.sha256.substr(0, 16));
      }
      return absl::OkStatus();
    };
  });
}

void AddImport(CLI::App& snapshot, Context& context) {
  auto dir = std::make_shared<std::string>();
  CLI::App* imp = snapshot.add_subcommand(
      "import", "Check an exported directory and add it as a recovery point");
  imp->add_option("dir", *dir, "directory written by `snapshot export`")->required();
  imp->add_flag("--json", context.json, "print JSON");
  imp->callback([dir, &context] {
    context.action = [dir, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(restore::ImportResult result, app->ImportSnapshot(*dir));
      if (context.json) {
        PrintJson(app::ImportJson(result));
        return absl::OkStatus();
      }
      std::cout << "imported as recovery point " << result.point_id << " of VM '"
                << result.manifest.vm_name << "' (exported point " << result.manifest.point_id
                << ", consistency "
                << repo::PointConsistencyName(result.manifest.point_description.consistency)
                << ")\n";
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterRestoreCommands(CLI::App& root, Context& context) {
  CLI::App* vm_cmd = FindOrAddSubcommand(root, "vm", "Define, run and inspect VMs");
  AddCreateFromSnapshot(*vm_cmd, context);
  AddRestore(*vm_cmd, context);
  CLI::App* snapshot =
      FindOrAddSubcommand(root, "snapshot", "Take, list and delete recovery points");
  AddMount(*snapshot, context);
  AddExport(*snapshot, context);
  AddImport(*snapshot, context);
}

}  // namespace sp::cli
