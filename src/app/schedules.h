// Protection schedules: which VMs, when (every N minutes, or at given times on given weekdays,
// in the host's time zone), with which consistency policy, which retention rules to apply after
// each successful point, and whether to verify the new point. The service runs them; the CLI
// and the API set them through App.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "platform/status.h"
#include "repo/prune.h"

namespace sp::app {

struct ScheduleSpec {
  std::string name;              // a VM's name, or a group's
  std::vector<std::string> vms;  // names
  int every_minutes = 0;         // > 0: an interval schedule
  std::vector<int> at_minutes;   // calendar: minutes after midnight (02:30 = 150)
  std::vector<int> weekdays;     // calendar: 0 = Sunday ... 6; empty: every day
  std::string consistency = "prefer-app";
  repo::PrunePolicy retention;  // empty: keep everything
  bool verify = false;
  bool enabled = true;
};

struct ScheduleRecord {
  ScheduleSpec spec;
  std::optional<int64_t> last_run_us;
  std::string last_job;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

// From the API's / catalog's JSON form; InvalidArgument naming the field. Exactly one of
// `every_minutes` and `at` must be given.
StatusOr<ScheduleSpec> ScheduleSpecFromJson(const std::string& name, const nlohmann::json& json);
nlohmann::json ScheduleSpecToJson(const ScheduleSpec& spec);
nlohmann::json ScheduleRecordToJson(const ScheduleRecord& record);

// "HH:MM" → minutes after midnight; "mon".."sun" → 1..6,0. InvalidArgument otherwise.
StatusOr<int> ParseClockTime(const std::string& text);
StatusOr<int> ParseWeekday(const std::string& text);

// The scheduled time at or before `now_us` that the schedule should run for, if it has not run
// since: for an interval, (last run or creation) + every; for a calendar, the newest slot not
// after now. A schedule that missed several slots (the service was down) is due once.
// Returns nullopt when nothing is due.
std::optional<int64_t> DueSlot(const ScheduleSpec& spec, std::optional<int64_t> last_run_us,
                               int64_t created_us, int64_t now_us);

}  // namespace sp::app
