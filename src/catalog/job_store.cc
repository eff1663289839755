#include "catalog/job_store.h"

namespace sp::catalog {
namespace {

constexpr char kJobColumns[] =
    "id, kind, state, vm, requested_by, params_json, progress_json, result_json, error, "
    "error_code, created_us, started_us, finished_us";

JobRecord ReadJob(const Statement& row) {
  JobRecord job;
  job.id = row.Text(0);
  job.kind = row.Text(1);
  job.state = ParseJobState(row.Text(2)).value_or(JobState::kFailed);
  job.vm = row.Text(3);
  job.requested_by = row.Text(4);
  job.params_json = row.Text(5);
  job.progress_json = row.Text(6);
  job.result_json = row.Text(7);
  job.error = row.Text(8);
  job.error_code = row.Text(9);
  job.created_us = row.Int(10);
  job.started_us = row.OptionalInt(11);
  job.finished_us = row.OptionalInt(12);
  return job;
}

StatusOr<std::vector<JobRecord>> ReadJobs(Statement& query) {
  std::vector<JobRecord> jobs;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return jobs;
    jobs.push_back(ReadJob(query));
  }
}

}  // namespace

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kQueued:
      return "queued";
    case JobState::kRunning:
      return "running";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kFailed:
      return "failed";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "failed";
}

std::optional<JobState> ParseJobState(const std::string& text) {
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    if (text == JobStateName(state)) return state;
  }
  return std::nullopt;
}

Status JobStore::Insert(const JobRecord& job) {
  SP_ASSIGN_OR_RETURN(Statement insert,
                      db_->Prepare(absl::StrCat("INSERT INTO jobs (", kJobColumns,
                                                ") VALUES "
                                                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
  insert.Bind(1, job.id).Bind(2, job.kind).Bind(3, JobStateName(job.state)).Bind(4, job.vm);
  insert.Bind(5, job.requested_by).Bind(6, job.params_json).Bind(7, job.progress_json);
  insert.Bind(8, job.result_json).Bind(9, job.error).Bind(10, job.error_code);
  insert.Bind(11, job.created_us).Bind(12, job.started_us).Bind(13, job.finished_us);
  return insert.Run();
}

Status JobStore::Update(const JobRecord& job) {
  SP_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE jobs SET state = ?, progress_json = ?, result_json = ?, "
                                   "error = ?, error_code = ?, started_us = ?, finished_us = ? "
                                   "WHERE id = ?"));
  update.Bind(1, JobStateName(job.state)).Bind(2, job.progress_json).Bind(3, job.result_json);
  update.Bind(4, job.error).Bind(5, job.error_code).Bind(6, job.started_us);
  SP_RETURN_IF_ERROR(update.Bind(7, job.finished_us).Bind(8, job.id).Run());
  if (db_->ChangedRows() == 0) return absl::NotFoundError(absl::StrCat("no job '", job.id, "'"));
  return absl::OkStatus();
}

StatusOr<JobRecord> JobStore::Get(const std::string& id) {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                                 " FROM jobs WHERE id = ?")));
  query.Bind(1, id);
  SP_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  return ReadJob(query);
}

StatusOr<std::vector<JobRecord>> JobStore::List(const JobFilter& filter) {
  SP_ASSIGN_OR_RETURN(
      Statement query,
      db_->Prepare(absl::StrCat("SELECT ", kJobColumns,
                                " FROM jobs WHERE (? = '' OR vm = ?) "
                                "AND (? = '' OR state = ?) ORDER BY created_us DESC, id DESC "
                                "LIMIT ? OFFSET ?")));
  std::string state = filter.state ? JobStateName(*filter.state) : "";
  query.Bind(1, filter.vm).Bind(2, filter.vm).Bind(3, state).Bind(4, state);
  query.Bind(5, int64_t{filter.limit}).Bind(6, int64_t{filter.offset});
  return ReadJobs(query);
}

StatusOr<std::map<std::string, int64_t>> JobStore::CountByState() {
  SP_ASSIGN_OR_RETURN(Statement query,
                      db_->Prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state"));
  std::map<std::string, int64_t> counts;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return counts;
    counts[query.Text(0)] = query.Int(1);
  }
}

StatusOr<std::vector<JobRecord>> JobStore::FailUnfinished(const std::string& reason) {
  SP_ASSIGN_OR_RETURN(auto transaction, Transaction::Begin(db_));
  SP_ASSIGN_OR_RETURN(Statement query,
                      db_->Prepare(absl::StrCat("SELECT ", kJobColumns,
                                                " FROM jobs WHERE state "
                                                "IN ('queued', 'running') ORDER BY created_us")));
  SP_ASSIGN_OR_RETURN(std::vector<JobRecord> jobs, ReadJobs(query));
  for (JobRecord& job : jobs) {
    job.state = JobState::kFailed;
    job.error = reason;
    job.error_code = "aborted";
    job.finished_us = clock_->UnixMicros();
    SP_RETURN_IF_ERROR(Update(job));
  }
  SP_RETURN_IF_ERROR(transaction->Commit());
  return jobs;
}

}  // namespace sp::catalog
