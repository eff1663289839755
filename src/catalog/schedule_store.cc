#include "catalog/schedule_store.h"

namespace sp::catalog {
namespace {

constexpr char kColumns[] = "name, spec_json, last_run_us, last_job, created_us, updated_us";

ScheduleRow ReadRow(const Statement& row) {
  return {row.Text(0), row.Text(1), row.OptionalInt(2), row.Text(3), row.Int(4), row.Int(5)};
}

Status NoSuchSchedule(const std::string& name) {
  return absl::NotFoundError(absl::StrCat("no schedule '", name, "'"));
}

}  // namespace

Status ScheduleStore::Put(const std::string& name, const std::string& spec_json) {
  SP_ASSIGN_OR_RETURN(Statement upsert,
                      db_->Prepare("INSERT INTO schedules (name, spec_json, created_us, "
                                   "updated_us) VALUES (?1, ?2, ?3, ?3) ON CONFLICT (name) DO "
                                   "UPDATE SET spec_json = ?2, updated_us = ?3"));
  return upsert.Bind(1, name).Bind(2, spec_json).Bind(3, clock_->UnixMicros()).Run();
}

StatusOr<ScheduleRow> ScheduleStore::Get(const std::string& name) {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare(absl::StrCat(
                                           "SELECT ", kColumns, " FROM schedules WHERE name = ?")));
  SP_ASSIGN_OR_RETURN(bool row, query.Bind(1, name).Step());
  if (!row) return NoSuchSchedule(name);
  return ReadRow(query);
}

StatusOr<std::vector<ScheduleRow>> ScheduleStore::List() {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare(absl::StrCat("SELECT ", kColumns,
                                                                 " FROM schedules ORDER BY name")));
  std::vector<ScheduleRow> rows;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return rows;
    rows.push_back(ReadRow(query));
  }
}

Status ScheduleStore::Remove(const std::string& name) {
  SP_ASSIGN_OR_RETURN(Statement remove, db_->Prepare("DELETE FROM schedules WHERE name = ?"));
  SP_RETURN_IF_ERROR(remove.Bind(1, name).Run());
  return db_->ChangedRows() == 0 ? NoSuchSchedule(name) : absl::OkStatus();
}

Status ScheduleStore::MarkRun(const std::string& name, int64_t slot_us, const std::string& job_id) {
  SP_ASSIGN_OR_RETURN(Statement update, db_->Prepare("UPDATE schedules SET last_run_us = ?, "
                                                     "last_job = ? WHERE name = ?"));
  SP_RETURN_IF_ERROR(update.Bind(1, slot_us).Bind(2, job_id).Bind(3, name).Run());
  return db_->ChangedRows() == 0 ? NoSuchSchedule(name) : absl::OkStatus();
}

}  // namespace sp::catalog
