#include "app/schedules.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "platform/clock.h"

namespace sp::app {
namespace {

constexpr const char* kWeekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

StatusOr<std::vector<std::string>> StringList(const nlohmann::json& json, const char* key,
                                              size_t max_items) {
  std::vector<std::string> out;
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return out;
  if (!it->is_array() || it->size() > max_items) {
    return Bad(key, absl::StrCat("must be an array of at most ", max_items, " strings"));
  }
  for (const auto& item : *it) {
    if (!item.is_string() || item.get_ref<const std::string&>().empty() ||
        item.get_ref<const std::string&>().size() > 128) {
      return Bad(key, "must hold non-empty strings of at most 128 characters");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

StatusOr<int> IntField(const nlohmann::json& json, const std::string& key, int low, int high,
                       int fallback) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  if (!it->is_number_integer() || it->get<int64_t>() < low || it->get<int64_t>() > high) {
    return Bad(key, absl::StrCat("must be an integer from ", low, " to ", high));
  }
  return static_cast<int>(it->get<int64_t>());
}

StatusOr<bool> BoolField(const nlohmann::json& json, const std::string& key, bool fallback) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) return Bad(key, "must be true or false");
  return it->get<bool>();
}

Status ReadRetention(const nlohmann::json& json, repo::PrunePolicy* policy) {
  auto it = json.find("retention");
  if (it == json.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_object()) return Bad("retention", "must be an object of keep_* rules");
  std::pair<const char*, int*> rules[] = {
      {"keep_last", &policy->keep_last},       {"keep_hourly", &policy->keep_hourly},
      {"keep_daily", &policy->keep_daily},     {"keep_weekly", &policy->keep_weekly},
      {"keep_monthly", &policy->keep_monthly}, {"keep_yearly", &policy->keep_yearly}};
  for (const auto& item : it->items()) {
    const std::string& key = item.key();
    auto rule = std::find_if(std::begin(rules), std::end(rules),
                             [&](const auto& r) { return key == r.first; });
    if (rule == std::end(rules)) return Bad("retention." + key, "is not a keep_* rule");
    SP_ASSIGN_OR_RETURN(*rule->second, IntField(*it, key, 0, 100000, 0));
  }
  return absl::OkStatus();
}

Status CheckKnownFields(const nlohmann::json& json) {
  static const char* kKnown[] = {"vms",         "every_minutes", "at",     "weekdays",
                                 "consistency", "retention",     "verify", "enabled"};
  for (const auto& item : json.items()) {
    const std::string& key = item.key();
    if (std::find_if(std::begin(kKnown), std::end(kKnown),
                     [&](const char* known) { return key == known; }) == std::end(kKnown)) {
      return Bad(key, "is not a field of a schedule");
    }
  }
  return absl::OkStatus();
}

Status ReadWhen(const nlohmann::json& json, ScheduleSpec* spec) {
  SP_ASSIGN_OR_RETURN(spec->every_minutes, IntField(json, "every_minutes", 1, 525600, 0));
  SP_ASSIGN_OR_RETURN(std::vector<std::string> at, StringList(json, "at", 48));
  SP_ASSIGN_OR_RETURN(std::vector<std::string> days, StringList(json, "weekdays", 7));
  if ((spec->every_minutes > 0) == !at.empty()) {
    return Bad("every_minutes", "give either every_minutes or at (times of day), not both");
  }
  for (const std::string& time : at) {
    auto minutes = ParseClockTime(time);
    if (!minutes.ok()) return Bad("at", std::string(minutes.status().message()));
    spec->at_minutes.push_back(*minutes);
  }
  for (const std::string& day : days) {
    auto weekday = ParseWeekday(day);
    if (!weekday.ok()) return Bad("weekdays", std::string(weekday.status().message()));
    spec->weekdays.push_back(*weekday);
  }
  if (spec->every_minutes > 0 && !spec->weekdays.empty()) {
    return Bad("weekdays", "apply to schedules with times of day (at), not to intervals");
  }
  std::sort(spec->at_minutes.begin(), spec->at_minutes.end());
  return absl::OkStatus();
}

}  // namespace

StatusOr<int> ParseClockTime(const std::string& text) {
  int hours = 0, minutes = 0;
  if (text.size() != 5 || text[2] != ':' || !absl::SimpleAtoi(text.substr(0, 2), &hours) ||
      !absl::SimpleAtoi(text.substr(3, 2), &minutes) || hours > 23 || minutes > 59 || hours < 0 ||
      minutes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' is not a time like 02:30"));
  }
  return hours * 60 + minutes;
}

StatusOr<int> ParseWeekday(const std::string& text) {
  for (int day = 0; day < 7; ++day) {
    if (text == kWeekdays[day]) return day;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("'", text, "' is not a weekday (mon, tue, wed, thu, fri, sat, sun)"));
}

StatusOr<ScheduleSpec> ScheduleSpecFromJson(const std::string& name, const nlohmann::json& json) {
  if (!json.is_object()) return absl::InvalidArgumentError("a schedule must be a JSON object");
  SP_RETURN_IF_ERROR(CheckKnownFields(json));
  ScheduleSpec spec;
  spec.name = name;
  SP_ASSIGN_OR_RETURN(spec.vms, StringList(json, "vms", 256));
  if (spec.vms.empty()) spec.vms.push_back(name);
  SP_RETURN_IF_ERROR(ReadWhen(json, &spec));
  auto consistency = json.find("consistency");
  if (consistency != json.end() && !consistency->is_null()) {
    std::string text = consistency->is_string() ? consistency->get<std::string>() : "";
    if (text != "require-app" && text != "prefer-app" && text != "crash-only") {
      return Bad("consistency", "must be require-app, prefer-app or crash-only");
    }
    spec.consistency = text;
  }
  SP_RETURN_IF_ERROR(ReadRetention(json, &spec.retention));
  SP_ASSIGN_OR_RETURN(spec.verify, BoolField(json, "verify", false));
  SP_ASSIGN_OR_RETURN(spec.enabled, BoolField(json, "enabled", true));
  return spec;
}

nlohmann::json ScheduleSpecToJson(const ScheduleSpec& spec) {
  nlohmann::json out = {{"vms", spec.vms},
                        {"consistency", spec.consistency},
                        {"verify", spec.verify},
                        {"enabled", spec.enabled}};
  if (spec.every_minutes > 0) {
    out["every_minutes"] = spec.every_minutes;
  } else {
    nlohmann::json at = nlohmann::json::array(), days = nlohmann::json::array();
    for (int minutes : spec.at_minutes) {
      at.push_back(absl::StrFormat("%02d:%02d", minutes / 60, minutes % 60));
    }
    for (int day : spec.weekdays) days.push_back(kWeekdays[day]);
    out["at"] = at;
    out["weekdays"] = days;
  }
  nlohmann::json retention = nlohmann::json::object();
  const repo::PrunePolicy& r = spec.retention;
  std::pair<const char*, int> rules[] = {
      {"keep_last", r.keep_last},       {"keep_hourly", r.keep_hourly},
      {"keep_daily", r.keep_daily},     {"keep_weekly", r.keep_weekly},
      {"keep_monthly", r.keep_monthly}, {"keep_yearly", r.keep_yearly}};
  for (const auto& [key, value] : rules) {
    if (value > 0) retention[key] = value;
  }
  out["retention"] = retention;
  return out;
}

nlohmann::json ScheduleRecordToJson(const ScheduleRecord& record) {
  nlohmann::json out = ScheduleSpecToJson(record.spec);
  out["name"] = record.spec.name;
  out["last_run"] = record.last_run_us ? nlohmann::json(FormatUnixMicros(*record.last_run_us))
                                       : nlohmann::json(nullptr);
  out["last_job"] = record.last_job;
  return out;
}

std::optional<int64_t> DueSlot(const ScheduleSpec& spec, std::optional<int64_t> last_run_us,
                               int64_t created_us, int64_t now_us) {
  if (!spec.enabled) return std::nullopt;
  int64_t since = last_run_us.value_or(created_us);
  if (spec.every_minutes > 0) {
    // The newest slot of the interval's cadence: however many passed, one run.
    int64_t every = int64_t{spec.every_minutes} * 60'000'000;
    if (now_us < since + every) return std::nullopt;
    return since + (now_us - since) / every * every;
  }
  absl::TimeZone zone = absl::LocalTimeZone();
  absl::CivilDay today = absl::ToCivilDay(absl::FromUnixMicros(now_us), zone);
  for (int back = 0; back <= 7; ++back) {
    absl::CivilDay day = today - back;
    int weekday = static_cast<int>(absl::GetWeekday(day));  // Monday = 0 in absl
    int sunday_based = (weekday + 1) % 7;
    if (!spec.weekdays.empty() && std::find(spec.weekdays.begin(), spec.weekdays.end(),
                                            sunday_based) == spec.weekdays.end()) {
      continue;
    }
    for (auto it = spec.at_minutes.rbegin(); it != spec.at_minutes.rend(); ++it) {
      int64_t slot = absl::ToUnixMicros(absl::FromCivil(absl::CivilMinute(day) + *it, zone));
      if (slot > now_us) continue;
      return slot > since ? std::optional<int64_t>(slot) : std::nullopt;
    }
  }
  return std::nullopt;
}

}  // namespace sp::app
