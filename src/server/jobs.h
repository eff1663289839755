// Jobs: the service runs every long operation on its own worker threads and lets callers follow
// it (state, progress with rate and ETA, result, error) and cancel it. A job's record is kept in
// the catalog at each change of state and about once a second of progress; at start the service
// marks the jobs a previous run left queued or running as failed, with the reason.
//
// Limits: at most `concurrent` jobs run at once, and of them at most `concurrent_captures` are
// captures; the rest wait in order ("queued").
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "catalog/job_store.h"
#include "platform/clock.h"
#include "platform/status.h"

namespace sp::server {

using catalog::JobRecord;
using catalog::JobState;

// What a running job sees: its cancel flag and a way to report progress.
class JobContext {
 public:
  // True once a cancel was asked for; long work checks it and returns Cancelled.
  bool cancelled() const { return cancel_->load(); }
  const std::atomic<bool>* cancel_flag() const { return cancel_.get(); }
  // `done` of `total` bytes (or items), in `phase` ("reading vda").
  void Progress(uint64_t done, uint64_t total, const std::string& phase);
  const std::string& id() const { return id_; }

 private:
  friend class JobManager;
  JobContext(class JobManager* manager, std::string id, std::shared_ptr<std::atomic<bool>> cancel)
      : manager_(manager), id_(std::move(id)), cancel_(std::move(cancel)) {}
  class JobManager* manager_;
  std::string id_;
  std::shared_ptr<std::atomic<bool>> cancel_;
};

// The work of a job: its result as JSON, or an error (Cancelled when it stopped on a cancel).
using JobWork = std::function<StatusOr<nlohmann::json>(JobContext&)>;

struct JobRequest {
  std::string kind;
  std::string vm;
  std::string requested_by;
  nlohmann::json params = nlohmann::json::object();
  bool capture = false;  // counts against concurrent_captures
  JobWork work;
};

// Called (on a worker thread, without locks held) when a job changes state (not on progress).
using JobListener = std::function<void(const JobRecord&)>;

class JobManager {
 public:
  JobManager(catalog::JobStore* store, Clock* clock, int concurrent, int concurrent_captures);
  ~JobManager();  // cancels what runs and waits for the workers

  void SetListener(JobListener listener) { listener_ = std::move(listener); }
  // Marks the jobs an earlier run left unfinished as failed; returns them.
  StatusOr<std::vector<JobRecord>> RecoverAfterRestart();

  // Queues `request`; returns its record (state queued). Unavailable while shutting down.
  StatusOr<JobRecord> Submit(JobRequest request);
  // The job as it is now (live progress for unfinished ones). NotFound.
  StatusOr<JobRecord> Get(const std::string& id);
  StatusOr<std::vector<JobRecord>> List(const catalog::JobFilter& filter);
  // Asks the job to stop. A queued job is cancelled at once; a running one when its work returns.
  // FailedPrecondition for a finished job; NotFound.
  StatusOr<JobRecord> Cancel(const std::string& id);
  StatusOr<std::map<std::string, int64_t>> CountByState();
  // Whether a job of `kind` for `vm` is queued or running.
  bool HasUnfinished(const std::string& kind, const std::string& vm);
  // Whether a job requested by `requested_by` ("schedule:NAME") is queued or running.
  bool HasUnfinishedBy(const std::string& requested_by);
  // Waits until the job finished or `timeout` passed; returns it as it is then.
  StatusOr<JobRecord> Wait(const std::string& id, Millis timeout);

 private:
  friend class JobContext;
  struct Live {
    JobRecord record;
    JobRequest request;
    std::shared_ptr<std::atomic<bool>> cancel = std::make_shared<std::atomic<bool>>(false);
    int64_t last_saved_us = 0;
    int64_t rate_start_us = 0;
    bool counts_as_capture = false;  // while it runs
  };
  void WorkerLoop();
  std::shared_ptr<Live> NextRunnable() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Run(const std::shared_ptr<Live>& live);
  void Finish(const std::shared_ptr<Live>& live, const StatusOr<nlohmann::json>& outcome);
  void ReportProgress(const std::string& id, uint64_t done, uint64_t total,
                      const std::string& phase);
  void Save(const JobRecord& record, bool state_changed);

  catalog::JobStore* const store_;  // not owned
  Clock* const clock_;              // not owned
  const int concurrent_captures_;
  JobListener listener_;
  absl::Mutex mutex_;
  absl::CondVar changed_;
  std::deque<std::shared_ptr<Live>> queue_ ABSL_GUARDED_BY(mutex_);
  std::map<std::string, std::shared_ptr<Live>> live_ ABSL_GUARDED_BY(mutex_);  // unfinished
  int running_captures_ ABSL_GUARDED_BY(mutex_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  absl::Mutex store_mutex_;  // one writer of job rows at a time
  std::vector<std::thread> workers_;
};

// The job as the API shows it (the same fields `stillpoint job show --json` prints).
nlohmann::json JobToJson(const JobRecord& job);

}  // namespace sp::server
