// `stillpoint schedule set|show|list|remove`: protection schedules the service runs.
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/service_commands.h"

namespace sp::cli {
namespace {

struct SetArgs {
  std::string name;
  std::vector<std::string> vms;
  std::string every;
  std::vector<std::string> at;
  std::string days;
  std::string policy;
  repo::PrunePolicy keep;
  bool verify = false;
  bool disabled = false;
};

// "90m", "2h", "1d" → minutes.
StatusOr<int64_t> ParseEvery(const std::string& text) {
  int64_t count = 0;
  char unit = text.empty() ? '?' : text.back();
  int64_t scale = unit == 'm' ? 1 : unit == 'h' ? 60 : unit == 'd' ? 1440 : 0;
  if (scale == 0 || !absl::SimpleAtoi(text.substr(0, text.size() - 1), &count) || count <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--every '", text, "': give minutes, hours or days, e.g. 30m, 4h, 1d"));
  }
  return count * scale;
}

StatusOr<nlohmann::json> SpecJson(const SetArgs& args) {
  nlohmann::json spec = nlohmann::json::object();
  if (!args.vms.empty()) spec["vms"] = args.vms;
  if (!args.every.empty()) {
    SP_ASSIGN_OR_RETURN(spec["every_minutes"], ParseEvery(args.every));
  }
  if (!args.at.empty()) spec["at"] = args.at;
  if (!args.days.empty()) {
    spec["weekdays"] = std::vector<std::string>(absl::StrSplit(args.days, ','));
  }
  if (!args.policy.empty()) spec["consistency"] = args.policy;
  const repo::PrunePolicy& k = args.keep;
  spec["retention"] = {{"keep_last", k.keep_last},       {"keep_hourly", k.keep_hourly},
                       {"keep_daily", k.keep_daily},     {"keep_weekly", k.keep_weekly},
                       {"keep_monthly", k.keep_monthly}, {"keep_yearly", k.keep_yearly}};
  spec["verify"] = args.verify;
  spec["enabled"] = !args.disabled;
  return spec;
}

void PrintSchedule(const app::ScheduleRecord& record) {
  nlohmann::json json = app::ScheduleRecordToJson(record);
  std::string when =
      record.spec.every_minutes > 0
          ? absl::StrCat("every ", record.spec.every_minutes, " min")
          : absl::StrCat("at ", absl::StrJoin(json["at"].get<std::vector<std::string>>(), ","),
                         json["weekdays"].empty() ? "" : " on ",
                         absl::StrJoin(json["weekdays"].get<std::vector<std::string>>(), ","));
  std::cout << "schedule:    " << record.spec.name << (record.spec.enabled ? "" : " (disabled)")
            << "\nVMs:         " << absl::StrJoin(record.spec.vms, ", ")
            << "\nwhen:        " << when << "\nconsistency: " << record.spec.consistency
            << "\nretention:   " << json["retention"].dump()
            << "\nverify:      " << (record.spec.verify ? "yes" : "no") << "\nlast run:    "
            << (record.last_run_us ? FormatUnixMicros(*record.last_run_us) : "never") << "\n";
}

void AddSet(CLI::App& schedule, Context& context) {
  auto args = std::make_shared<SetArgs>();
  CLI::App* set = schedule.add_subcommand("set", "Create or change a protection schedule");
  set->add_option("name", args->name, "the VM's name, or a group's name with --vm")->required();
  set->add_option("--vm", args->vms, "a VM of the group (repeatable; default: NAME)");
  set->add_option("--every", args->every, "interval: 30m, 4h, 1d");
  set->add_option("--at", args->at, "time of day HH:MM (repeatable)");
  set->add_option("--days", args->days, "weekdays for --at: mon,tue,...; default every day");
  set->add_option("--policy", args->policy, "require-app, prefer-app or crash-only");
  set->add_option("--keep-last", args->keep.keep_last, "retention: the N newest");
  set->add_option("--keep-hourly", args->keep.keep_hourly, "retention: newest of N hours");
  set->add_option("--keep-daily", args->keep.keep_daily, "retention: newest of N days");
  set->add_option("--keep-weekly", args->keep.keep_weekly, "retention: newest of N weeks");
  set->add_option("--keep-monthly", args->keep.keep_monthly, "retention: newest of N months");
  set->add_option("--keep-yearly", args->keep.keep_yearly, "retention: newest of N years");
  set->add_flag("--verify", args->verify, "verify each new point");
  set->add_flag("--disabled", args->disabled, "keep the schedule but do not run it");
  set->add_flag("--json", context.json, "print JSON");
  set->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(nlohmann::json json, SpecJson(*args));
      SP_ASSIGN_OR_RETURN(app::ScheduleSpec spec, app::ScheduleSpecFromJson(args->name, json));
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto record, app->SetSchedule(spec, {"cli", "", ""}));
      if (context.json)
        PrintJson(app::ScheduleRecordToJson(record));
      else
        PrintSchedule(record);
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterScheduleCommands(CLI::App& root, Context& context) {
  CLI::App* schedule = root.add_subcommand("schedule", "Protection schedules (run by the service)");
  schedule->require_subcommand(1);
  AddSet(*schedule, context);
  auto name = std::make_shared<std::string>();
  CLI::App* show = schedule->add_subcommand("show", "Show a schedule");
  show->add_option("name", *name, "schedule name")->required();
  show->add_flag("--json", context.json, "print JSON");
  show->callback([name, &context] {
    context.action = [name, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto record, app->GetSchedule(*name));
      if (context.json)
        PrintJson(app::ScheduleRecordToJson(record));
      else
        PrintSchedule(record);
      return absl::OkStatus();
    };
  });
  CLI::App* list = schedule->add_subcommand("list", "List schedules");
  list->add_flag("--json", context.json, "print JSON");
  list->callback([&context] {
    context.action = [&context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto records, app->ListSchedules());
      nlohmann::json out = nlohmann::json::array();
      Table table({"SCHEDULE", "VMS", "EVERY/AT", "ENABLED", "LAST RUN"});
      for (const auto& record : records) {
        nlohmann::json json = app::ScheduleRecordToJson(record);
        out.push_back(json);
        table.AddRow({record.spec.name, absl::StrJoin(record.spec.vms, ","),
                      record.spec.every_minutes > 0 ? absl::StrCat(record.spec.every_minutes, "m")
                                                    : json["at"].dump(),
                      record.spec.enabled ? "yes" : "no",
                      record.last_run_us ? FormatUnixMicros(*record.last_run_us) : "never"});
      }
      if (context.json)
        PrintJson(out);
      else
        std::cout << table.Render();
      return absl::OkStatus();
    };
  });
  auto removed = std::make_shared<std::string>();
  CLI::App* remove = schedule->add_subcommand("remove", "Remove a schedule");
  remove->add_option("name", *removed, "schedule name")->required();
  remove->callback([removed, &context] {
    context.action = [removed, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_RETURN_IF_ERROR(app->RemoveSchedule(*removed, {"cli", "", ""}));
      std::cout << "removed schedule '" << *removed << "'\n";
      return absl::OkStatus();
    };
  });
}

}  // namespace sp::cli
