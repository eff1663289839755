// The service's jobs in the catalog: every long operation (capture, restore, create-from,
// export, import, verify, gc, prune) with its state, progress, result and error, so that a list
// survives a restart and no job stays "running" after the service that ran it is gone.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "platform/clock.h"
#include "platform/status.h"

namespace sp::catalog {

enum class JobState { kQueued, kRunning, kSucceeded, kFailed, kCancelled };

const char* JobStateName(JobState state);
std::optional<JobState> ParseJobState(const std::string& text);
inline bool IsFinished(JobState state) {
  return state == JobState::kSucceeded || state == JobState::kFailed ||
         state == JobState::kCancelled;
}

struct JobRecord {
  std::string id;
  std::string kind;  // "snapshot.create", "snapshot.restore", "repo.gc", ...
  JobState state = JobState::kQueued;
  std::string vm;            // the VM it works on, by name; empty for repository jobs
  std::string requested_by;  // user, "schedule:NAME", or "cli"
  std::string params_json;   // the request, as JSON
  std::string progress_json = "{}";
  std::string result_json;  // on success
  std::string error;        // on failure: the message
  std::string error_code;   // "not_found", "failed_precondition", ...
  int64_t created_us = 0;
  std::optional<int64_t> started_us;
  std::optional<int64_t> finished_us;
};

struct JobFilter {
  std::string vm;                 // empty: all
  std::optional<JobState> state;  // none: all
  int limit = 100;
  int offset = 0;
};

class JobStore {
 public:
  JobStore(Database* db, Clock* clock) : db_(db), clock_(clock) {}

  Status Insert(const JobRecord& job);
  // Writes state, progress, result, error and times of `job` (by id). NotFound for an unknown id.
  Status Update(const JobRecord& job);
  StatusOr<JobRecord> Get(const std::string& id);  // NotFound
  // Newest first.
  StatusOr<std::vector<JobRecord>> List(const JobFilter& filter);
  // How many jobs are in each state (states without jobs absent).
  StatusOr<std::map<std::string, int64_t>> CountByState();
  // Marks every queued or running job failed with `reason` (a restart found them orphaned);
  // returns them as they are now.
  StatusOr<std::vector<JobRecord>> FailUnfinished(const std::string& reason);

 private:
  Database* db_;
  Clock* clock_;
};

}  // namespace sp::catalog
