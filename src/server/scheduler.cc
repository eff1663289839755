#include "server/scheduler.h"

#include <cstdio>

#include "app/app.h"

namespace sp::server {

JobWork ScheduledCaptureWork(AppPool* apps, const app::ScheduleSpec& spec, const std::string& vm) {
  return [apps, spec, vm](JobContext& job) -> StatusOr<nlohmann::json> {
    SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps->Acquire());
    capture::CaptureRequest request;
    request.vm = vm;
    request.description = absl::StrCat("schedule ", spec.name);
    SP_ASSIGN_OR_RETURN(request.policy, capture::ParsePolicy(spec.consistency));
    request.cancel = job.cancel_flag();
    SP_ASSIGN_OR_RETURN(capture::CaptureResult result,
                        app->CreateSnapshot(request, [&job](const capture::Progress& progress) {
                          job.Progress(progress.all_done_bytes, progress.total_bytes,
                                       "reading " + progress.volume);
                        }));
    nlohmann::json out = result.ToJson();
    if (!spec.retention.Empty()) {
      SP_ASSIGN_OR_RETURN(auto decisions, app->Prune({}, vm, spec.retention, false));
      out["retention"] = app::PruneJson(decisions, false);
    }
    if (spec.verify) {
      SP_ASSIGN_OR_RETURN(repo::VerifyReport report, app::App::VerifyRepo({}, result.point_id));
      out["verify"] = app::VerifyJson(report);
      SP_RETURN_IF_ERROR(app::App::VerifyVerdict(report));
    }
    return out;
  };
}

StatusOr<std::vector<JobRecord>> Scheduler::RunSchedule(app::App* app,
                                                        const app::ScheduleRecord& record,
                                                        int64_t slot_us) {
  const app::ScheduleSpec& spec = record.spec;
  std::string by = "schedule:" + spec.name;
  std::vector<JobRecord> submitted;
  std::string job_ids;
  for (const std::string& vm : spec.vms) {
    JobRequest request{"snapshot.create",         vm,   by,
                       {{"schedule", spec.name}}, true, ScheduledCaptureWork(apps_, spec, vm)};
    SP_ASSIGN_OR_RETURN(JobRecord job, jobs_->Submit(std::move(request)));
    absl::StrAppend(&job_ids, job_ids.empty() ? "" : ",", job.id);
    submitted.push_back(job);
  }
  SP_RETURN_IF_ERROR(app->MarkScheduleRun(spec.name, slot_us, job_ids));
  return submitted;
}

StatusOr<std::vector<JobRecord>> Scheduler::Tick() {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps_->Acquire());
  SP_ASSIGN_OR_RETURN(auto schedules, app->ListSchedules());
  int64_t now = clock_->UnixMicros();
  std::vector<JobRecord> submitted;
  for (const app::ScheduleRecord& record : schedules) {
    auto slot = app::DueSlot(record.spec, record.last_run_us, record.created_us, now);
    if (!slot || jobs_->HasUnfinishedBy("schedule:" + record.spec.name)) continue;
    SP_ASSIGN_OR_RETURN(auto jobs, RunSchedule(app.get(), record, *slot));
    submitted.insert(submitted.end(), jobs.begin(), jobs.end());
  }
  return submitted;
}

void Scheduler::Start() {
  thread_ = std::thread([this] {
    while (true) {
      auto ran = Tick();
      if (!ran.ok()) {
        std::fprintf(stderr, "stillpointd: schedules: %s\n", ran.status().ToString().c_str());
      }
      absl::MutexLock lock(&mutex_);
      if (mutex_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) return;
    }
  });
}

void Scheduler::Stop() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace sp::server
