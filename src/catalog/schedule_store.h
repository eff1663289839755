// Protection schedules in the catalog, as rows: the schedule's own description is JSON that
// app:: reads and checks (see app/schedules.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "platform/clock.h"
#include "platform/status.h"

namespace sp::catalog {

struct ScheduleRow {
  std::string name;
  std::string spec_json;
  std::optional<int64_t> last_run_us;
  std::string last_job;
  int64_t created_us = 0;
  int64_t updated_us = 0;
};

class ScheduleStore {
 public:
  ScheduleStore(Database* db, Clock* clock) : db_(db), clock_(clock) {}

  // Adds the schedule or replaces its description (keeping when it last ran).
  Status Put(const std::string& name, const std::string& spec_json);
  StatusOr<ScheduleRow> Get(const std::string& name);  // NotFound
  StatusOr<std::vector<ScheduleRow>> List();           // by name
  Status Remove(const std::string& name);              // NotFound
  Status MarkRun(const std::string& name, int64_t slot_us, const std::string& job_id);

 private:
  Database* db_;
  Clock* clock_;
};

}  // namespace sp::catalog
