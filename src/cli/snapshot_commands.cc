#include "cli/snapshot_commands.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/command_tree.h"

namespace sp::cli {
namespace {

// A one-line progress display on a terminal: bytes, MB/s, ETA. Silent when stderr is no tty.
class ProgressLine {
 public:
  ProgressLine() : tty_(::isatty(STDERR_FILENO) == 1) {}
  void Update(const capture::Progress& progress) {
    if (!tty_) return;
    double elapsed = MillisSince(start_) / 1000.0;
    if (elapsed - last_ < 0.2 && progress.all_done_bytes < progress.total_bytes) return;
    last_ = elapsed;
    double rate = elapsed > 0 ? static_cast<double>(progress.all_done_bytes) / elapsed : 0;
    double left =
        rate > 0 ? static_cast<double>(progress.total_bytes - progress.all_done_bytes) / rate : 0;
    std::fprintf(stderr, "\r  %-10s %10s / %-10s %7.1f MB/s  ETA %4.0f s ", progress.volume.c_str(),
                 FormatBytes(static_cast<int64_t>(progress.all_done_bytes)).c_str(),
                 FormatBytes(static_cast<int64_t>(progress.total_bytes)).c_str(), rate / 1e6, left);
    shown_ = true;
  }
  ~ProgressLine() {
    if (shown_) std::fprintf(stderr, "\n");
  }

 private:
  bool tty_;
  bool shown_ = false;
  double last_ = -1;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

// The frozen window and its parts, or the cut of a point taken without freezing.
void PrintWindow(const capture::CaptureTimings& t) {
  if (t.frozen_window_ms > 0) {
    std::cout << absl::StrFormat(
        "frozen window: %.0f ms (freeze %.0f ms, point-in-time cut %.1f ms, thaw %.0f ms)\n",
        t.frozen_window_ms, t.freeze_ms, t.qmp_ms, t.thaw_ms);
  } else if (t.qmp_ms > 0) {
    std::cout << absl::StrFormat("cut:           %.1f ms (vCPUs paused %.1f ms)\n", t.qmp_ms,
                                 t.paused_ms);
  }
}

void PrintResult(const capture::CaptureResult& result) {
  const capture::CaptureTimings& t = result.timings;
  std::cout << "recovery point " << result.point_id << " of VM '" << result.vm_name << "'\n"
            << "consistency:   " << capture::ConsistencyName(result.consistency) << " — "
            << result.reason << "\n"
            << "power state:   " << result.power_state << "\n"
            << "kind:          " << (result.incremental ? "incremental" : "full") << "\n";
  PrintWindow(t);
  std::cout << "size:          " << FormatBytes(static_cast<int64_t>(result.logical_bytes))
            << ", read " << FormatBytes(static_cast<int64_t>(result.read_bytes)) << ", new "
            << FormatBytes(static_cast<int64_t>(result.new_bytes)) << "\n"
            << absl::StrFormat("time:          %.1f s\n", t.total_ms / 1000);
  for (const std::string& note : result.notes) std::cout << "note:          " << note << "\n";
}

struct CreateArgs {
  capture::CaptureRequest request;
  std::string consistency;
  int64_t freeze_deadline_ms = 0;
};

void AddCreate(CLI::App& snapshot, Context& context) {
  auto args = std::make_shared<CreateArgs>();
  CLI::App* create = snapshot.add_subcommand("create", "Take a snapshot of a VM");
  create->add_option("vm", args->request.vm, "VM name or UUID")->required();
  create->add_option("--name", args->request.name, "name of the point (default: the VM's name)");
  create->add_option("--description", args->request.description, "free text");
  create->add_option("--volume", args->request.volumes,
                     "capture only these volumes (repeatable; the boot volume is required)");
  create->add_option("--consistency", args->consistency,
                     "require-app, prefer-app or crash-only (default: the VM's policy)");
  create->add_flag("--full", args->request.force_full, "read everything, not only changes");
  create->add_option("--freeze-deadline-ms", args->freeze_deadline_ms,
                     "longest the guest may stay frozen (default: capture.freeze_deadline_ms)");
  create->add_flag("--json", context.json, "print the result as JSON");
  create->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      capture::CaptureRequest request = args->request;
      if (!args->consistency.empty()) {
        SP_ASSIGN_OR_RETURN(request.policy, capture::ParsePolicy(args->consistency));
      }
      request.freeze_deadline = Millis(args->freeze_deadline_ms);
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      auto progress = std::make_shared<ProgressLine>();
      auto result = app->CreateSnapshot(
          request, [progress](const capture::Progress& p) { progress->Update(p); });
      progress.reset();
      SP_RETURN_IF_ERROR(result.status());
      if (context.json) {
        PrintJson(result->ToJson());
      } else {
        PrintResult(*result);
      }
      return absl::OkStatus();
    };
  });
}

void AddList(CLI::App& snapshot, Context& context) {
  auto vm = std::make_shared<std::string>();
  CLI::App* list = snapshot.add_subcommand("list", "List recovery points (of one VM)");
  list->add_option("vm", *vm, "VM name or UUID");
  list->add_flag("--json", context.json, "print JSON");
  list->callback([vm, &context] {
    context.action = [vm, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto points, app->ListSnapshots(*vm));
      if (context.json) {
        nlohmann::json out = nlohmann::json::array();
        for (const auto& point : points) out.push_back(app::PointRecordJson(point));
        PrintJson(out);
        return absl::OkStatus();
      }
      Table table({"ID", "NAME", "VM", "TIME", "STATE", "CONSISTENCY", "NEW", "TOTAL"});
      for (const auto& point : points) {
        table.AddRow({point.id, point.name, point.vm_name,
                      FormatUnixMicros(point.created_us).substr(0, 19), point.state,
                      point.consistency, FormatBytes(point.new_stored_bytes),
                      FormatBytes(point.logical_bytes)});
      }
      std::cout << table.Render();
      return absl::OkStatus();
    };
  });
}

// A recorded text, or what to show when it was not recorded.
std::string OrElse(const std::string& text, const char* fallback) {
  return text.empty() ? fallback : text;
}

capture::CaptureTimings TimingsOf(const repo::PointTimings& recorded) {
  capture::CaptureTimings t;
  t.freeze_ms = recorded.freeze_ms;
  t.qmp_ms = recorded.qmp_ms;
  t.paused_ms = recorded.paused_ms;
  t.thaw_ms = recorded.thaw_ms;
  t.frozen_window_ms = recorded.frozen_window_ms;
  return t;
}

void PrintPointVolumes(const repo::Manifest& point) {
  Table table({"VOLUME", "BOOT", "SIZE", "CHUNKS", "ZERO", "NEW", "NEW STORED", "READ"});
  for (const repo::ManifestVolume& volume : point.volumes) {
    const repo::PointVolume* recorded = point.point_description.FindVolume(volume.name);
    bool boot = recorded != nullptr && recorded->boot;
    bool incremental = recorded != nullptr && recorded->incremental;
    table.AddRow({volume.name, boot ? "yes" : "", FormatBytes(static_cast<int64_t>(volume.size)),
                  absl::StrCat(volume.chunks), absl::StrCat(volume.zero_chunks),
                  absl::StrCat(volume.new_chunks),
                  FormatBytes(static_cast<int64_t>(volume.new_stored_bytes)),
                  incremental ? "changes only" : "in full"});
  }
  std::cout << "\n" << table.Render();
}

void PrintFilesystems(const repo::PointDescription& recorded) {
  if (recorded.guest_filesystems.empty()) return;
  Table table({"MOUNTPOINT", "TYPE", "VOLUMES"});
  for (const repo::PointFilesystem& fs : recorded.guest_filesystems) {
    table.AddRow({fs.mountpoint, fs.type, absl::StrJoin(fs.volumes, ",")});
  }
  std::cout << "\nguest filesystems at capture:\n" << table.Render();
}

// What a point is: identity, consistency and why, power state, policy, full or incremental.
void PrintPointSummary(const repo::Manifest& point) {
  const repo::PointDescription& recorded = point.point_description;
  std::cout << "recovery point " << point.id << " of VM '" << point.vm_name << "' (" << point.vm_id
            << ")\n"
            << "name:          " << point.name << "\n";
  if (!point.description.empty()) std::cout << "description:   " << point.description << "\n";
  std::cout << "state:         complete\n"
            << "created:       " << FormatUnixMicros(point.created_micros) << "\n"
            << "consistency:   " << repo::PointConsistencyName(recorded.consistency) << " — "
            << OrElse(recorded.reason, "no reason recorded") << "\n"
            << "power state:   " << recorded.power_state << "\n"
            << "policy:        " << recorded.policy << "\n"
            << "kind:          "
            << (point.parent_id.empty()
                    ? "full"
                    : (recorded.incremental ? "incremental, parent " + point.parent_id
                                            : "full, parent " + point.parent_id))
            << "\n";
}

// Its cost: the frozen window, sizes, time, and what else the capture noted.
void PrintPointCosts(const repo::Manifest& point) {
  const repo::PointDescription& recorded = point.point_description;
  PrintWindow(TimingsOf(recorded.timings));
  uint64_t stored = 0;
  for (const repo::ManifestVolume& volume : point.volumes) stored += volume.new_stored_bytes;
  std::cout << "size:          " << FormatBytes(static_cast<int64_t>(point.LogicalBytes()))
            << ", read " << FormatBytes(static_cast<int64_t>(recorded.bytes.read))
            << ", new stored " << FormatBytes(static_cast<int64_t>(stored)) << "\n"
            << absl::StrFormat(
                   "time:          %.1f s\n",
                   static_cast<double>(point.committed_micros - point.created_micros) / 1e6);
  if (recorded.imported) {
    std::cout << "imported:      from " << recorded.imported->from << " (exported point "
              << recorded.imported->original_point_id << ")\n";
  }
  for (const std::string& note : recorded.notes) std::cout << "note:          " << note << "\n";
}

// `snapshot show` for people: the summary, its cost, then the volumes and guest filesystems.
void PrintPoint(const repo::Manifest& point) {
  PrintPointSummary(point);
  PrintPointCosts(point);
  PrintPointVolumes(point);
  PrintFilesystems(point.point_description);
}

// A point that is not (yet) complete: what the catalog knows of it.
void PrintUnfinished(const catalog::RecoveryPointRecord& point, bool json) {
  if (json) {
    PrintJson(app::PointRecordJson(point));
  } else {
    std::cout << "id:     " << point.id << "\nvm:     " << point.vm_name
              << "\nstate:  " << point.state << "\nreason: " << point.reason << "\n";
  }
}

void AddShow(CLI::App& snapshot, Context& context) {
  auto id = std::make_shared<std::string>();
  CLI::App* show = snapshot.add_subcommand("show", "Show a recovery point in full");
  show->add_option("id", *id, "recovery point id (or a unique prefix)")->required();
  show->add_flag("--json", context.json, "print JSON");
  show->callback([id, &context] {
    context.action = [id, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(app::SnapshotDetails details, app->GetSnapshot(*id));
      if (details.unfinished) {
        PrintUnfinished(*details.unfinished, context.json);
      } else if (context.json) {
        PrintJson(app::PointJson(*details.manifest));
      } else {
        PrintPoint(*details.manifest);
      }
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterSnapshotCommands(CLI::App& root, Context& context) {
  CLI::App* snapshot =
      FindOrAddSubcommand(root, "snapshot", "Take, list and delete recovery points");
  AddCreate(*snapshot, context);
  AddList(*snapshot, context);
  AddShow(*snapshot, context);
}

void RegisterConfigCommands(CLI::App& root, Context& context) {
  CLI::App* config = FindOrAddSubcommand(root, "config", "System-wide settings");
  CLI::App* list = config->add_subcommand("list", "Show every setting");
  list->add_flag("--json", context.json, "print JSON");
  list->callback([&context] {
    context.action = [&context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      nlohmann::json out = nlohmann::json::object();
      Table table({"SETTING", "VALUE"});
      for (const auto& [key, fallback] : app::App::SettingDefaults()) {
        SP_ASSIGN_OR_RETURN(std::string value, app->GetSetting(key));
        out[key] = value;
        table.AddRow({key, value});
      }
      if (context.json) {
        PrintJson(out);
      } else {
        std::cout << table.Render();
      }
      return absl::OkStatus();
    };
  });
  auto key = std::make_shared<std::string>();
  auto value = std::make_shared<std::string>();
  CLI::App* get = config->add_subcommand("get", "Show one setting");
  get->add_option("key", *key, "setting")->required();
  get->callback([key, &context] {
    context.action = [key, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(std::string current, app->GetSetting(*key));
      std::cout << current << "\n";
      return absl::OkStatus();
    };
  });
  CLI::App* set = config->add_subcommand("set", "Change a setting");
  set->add_option("key", *key, "setting")->required();
  set->add_option("value", *value, "new value")->required();
  set->callback([key, value, &context] {
    context.action = [key, value, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_RETURN_IF_ERROR(app->SetSetting(*key, *value));
      std::cout << *key << " = " << *value << "\n";
      return absl::OkStatus();
    };
  });
}

}  // namespace sp::cli
