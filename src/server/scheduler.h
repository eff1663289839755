// Runs protection schedules: about once a second it asks which schedules are due (app::DueSlot,
// on the service's clock) and submits one capture job per VM of each due schedule. A schedule
// with a job still queued or running is not started again (no overlap; it runs once when that
// job ends if a slot passed meanwhile); a slot missed while the service was down runs once.
// After a successful point the job applies the schedule's retention and, if asked, verifies
// the new point.
#pragma once

#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "platform/clock.h"
#include "server/app_pool.h"
#include "server/jobs.h"

namespace sp::server {

class Scheduler {
 public:
  Scheduler(AppPool* apps, JobManager* jobs, Clock* clock)
      : apps_(apps), jobs_(jobs), clock_(clock) {}
  ~Scheduler() { Stop(); }

  void Start();
  void Stop();
  // One pass over the schedules; returns the jobs it submitted. Errors of reading the catalog.
  StatusOr<std::vector<JobRecord>> Tick();

 private:
  StatusOr<std::vector<JobRecord>> RunSchedule(app::App* app, const app::ScheduleRecord& record,
                                               int64_t slot_us);

  AppPool* const apps_;
  JobManager* const jobs_;
  Clock* const clock_;
  absl::Mutex mutex_;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

// The work of one scheduled capture of `vm`: snapshot, retention, optional verify.
JobWork ScheduledCaptureWork(AppPool* apps, const app::ScheduleSpec& spec, const std::string& vm);

}  // namespace sp::server
