// Protection schedules: stored in the catalog, run by the service.
#include "app/app.h"
#include "catalog/schedule_store.h"

namespace sp::app {
namespace {

StatusOr<ScheduleRecord> FromRow(const catalog::ScheduleRow& row) {
  nlohmann::json json = nlohmann::json::parse(row.spec_json, nullptr, false);
  auto spec = ScheduleSpecFromJson(row.name, json);
  if (!spec.ok()) {
    return absl::DataLossError(
        absl::StrCat("schedule '", row.name, "' in the catalog: ", spec.status().message()));
  }
  return ScheduleRecord{*spec, row.last_run_us, row.last_job, row.created_us, row.updated_us};
}

}  // namespace

StatusOr<ScheduleRecord> App::SetSchedule(const ScheduleSpec& spec,
                                          const catalog::EventOrigin& origin) {
  if (spec.name.empty() || spec.name.size() > 128) {
    return absl::InvalidArgumentError("a schedule's name must be 1 to 128 characters");
  }
  for (const std::string& vm : spec.vms) {
    auto found = catalog_->FindVm(vm);
    if (!found.ok()) return Annotate(found.status(), absl::StrCat("schedule '", spec.name, "'"));
  }
  catalog::ScheduleStore store(catalog_->db(), catalog_->clock());
  SP_RETURN_IF_ERROR(store.Put(spec.name, ScheduleSpecToJson(spec).dump()));
  (void)catalog_->AddEvent(
      nullptr, "schedule.set",
      absl::StrCat("schedule '", spec.name, "': ", ScheduleSpecToJson(spec).dump()), origin);
  return GetSchedule(spec.name);
}

StatusOr<ScheduleRecord> App::GetSchedule(const std::string& name) {
  catalog::ScheduleStore store(catalog_->db(), catalog_->clock());
  SP_ASSIGN_OR_RETURN(catalog::ScheduleRow row, store.Get(name));
  return FromRow(row);
}

StatusOr<std::vector<ScheduleRecord>> App::ListSchedules() {
  catalog::ScheduleStore store(catalog_->db(), catalog_->clock());
  SP_ASSIGN_OR_RETURN(auto rows, store.List());
  std::vector<ScheduleRecord> records;
  for (const auto& row : rows) {
    auto record = FromRow(row);
    if (record.ok()) {
      records.push_back(*std::move(record));
    } else {
      (void)catalog_->AddEvent(nullptr, "schedule.unreadable",
                               std::string(record.status().message()));
    }
  }
  return records;
}

Status App::RemoveSchedule(const std::string& name, const catalog::EventOrigin& origin) {
  catalog::ScheduleStore store(catalog_->db(), catalog_->clock());
  SP_RETURN_IF_ERROR(store.Remove(name));
  (void)catalog_->AddEvent(nullptr, "schedule.removed",
                           absl::StrCat("schedule '", name, "' removed"), origin);
  return absl::OkStatus();
}

Status App::MarkScheduleRun(const std::string& name, int64_t slot_us, const std::string& job_id) {
  return catalog::ScheduleStore(catalog_->db(), catalog_->clock()).MarkRun(name, slot_us, job_id);
}

}  // namespace sp::app
