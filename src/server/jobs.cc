#include "server/jobs.h"

#include <algorithm>

#include "app/credentials.h"
#include "server/router.h"

namespace sp::server {
namespace {

constexpr int64_t kSaveEveryUs = 1'000'000;

nlohmann::json ParseOrEmpty(const std::string& text) {
  if (text.empty()) return nullptr;
  nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
  return value.is_discarded() ? nlohmann::json(nullptr) : value;
}

std::string ErrorCodeOf(const Status& status) {
  return absl::IsCancelled(status) ? "cancelled" : HttpErrorOf(status.code()).code;
}

}  // namespace

void JobContext::Progress(uint64_t done, uint64_t total, const std::string& phase) {
  manager_->ReportProgress(id_, done, total, phase);
}

JobManager::JobManager(catalog::JobStore* store, Clock* clock, int concurrent,
                       int concurrent_captures)
    : store_(store), clock_(clock), concurrent_captures_(std::max(1, concurrent_captures)) {
  for (int i = 0; i < std::max(1, concurrent); ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

JobManager::~JobManager() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
    for (auto& [id, live] : live_) live->cancel->store(true);
    changed_.SignalAll();
  }
  for (std::thread& worker : workers_) worker.join();
}

StatusOr<std::vector<JobRecord>> JobManager::RecoverAfterRestart() {
  absl::MutexLock lock(&store_mutex_);
  return store_->FailUnfinished(
      "the service stopped while this job was queued or running; its work was not finished");
}

StatusOr<JobRecord> JobManager::Submit(JobRequest request) {
  auto live = std::make_shared<Live>();
  live->record.id = app::NewSecret("job_").substr(0, 20);
  live->record.kind = request.kind;
  live->record.vm = request.vm;
  live->record.requested_by = request.requested_by;
  live->record.params_json = request.params.dump();
  live->record.created_us = clock_->UnixMicros();
  live->request = std::move(request);
  {
    absl::MutexLock lock(&store_mutex_);
    SP_RETURN_IF_ERROR(store_->Insert(live->record));
  }
  absl::MutexLock lock(&mutex_);
  if (stopping_) return absl::UnavailableError("the service is shutting down");
  live_[live->record.id] = live;
  queue_.push_back(live);
  changed_.SignalAll();
  return live->record;
}

std::shared_ptr<JobManager::Live> JobManager::NextRunnable() {
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->request.capture && running_captures_ >= concurrent_captures_) continue;
    std::shared_ptr<Live> live = *it;
    queue_.erase(it);
    return live;
  }
  return nullptr;
}

void JobManager::WorkerLoop() {
  while (true) {
    std::shared_ptr<Live> live;
    JobRecord started;
    {
      absl::MutexLock lock(&mutex_);
      while (!stopping_ && (live = NextRunnable()) == nullptr) changed_.Wait(&mutex_);
      if (live == nullptr) return;
      live->counts_as_capture = live->request.capture;
      if (live->counts_as_capture) ++running_captures_;
      live->record.state = JobState::kRunning;
      live->record.started_us = clock_->UnixMicros();
      live->rate_start_us = *live->record.started_us;
      started = live->record;
    }
    Save(started, true);
    Run(live);
  }
}

void JobManager::Run(const std::shared_ptr<Live>& live) {
  JobContext context(this, live->record.id, live->cancel);
  StatusOr<nlohmann::json> outcome = absl::CancelledError("cancelled before it started");
  if (!live->cancel->load()) {
    try {
      outcome = live->request.work(context);
    } catch (const std::exception& error) {
      outcome = absl::InternalError(absl::StrCat("unexpected exception: ", error.what()));
    }
  }
  Finish(live, outcome);
}

void JobManager::Finish(const std::shared_ptr<Live>& live,
                        const StatusOr<nlohmann::json>& outcome) {
  JobRecord record;
  {
    absl::MutexLock lock(&mutex_);
    JobRecord& job = live->record;
    if (outcome.ok()) {
      job.state = JobState::kSucceeded;
      job.result_json = outcome->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      bool cancelled = live->cancel->load() || absl::IsCancelled(outcome.status());
      job.state = cancelled ? JobState::kCancelled : JobState::kFailed;
      job.error = std::string(outcome.status().message());
      job.error_code = ErrorCodeOf(outcome.status());
    }
    job.finished_us = clock_->UnixMicros();
    if (live->counts_as_capture) --running_captures_;
    live->counts_as_capture = false;
    record = job;
  }
  // Stored before it leaves the live set, so that a reader never sees it running again.
  Save(record, true);
  absl::MutexLock lock(&mutex_);
  live_.erase(record.id);
  changed_.SignalAll();
}

void JobManager::ReportProgress(const std::string& id, uint64_t done, uint64_t total,
                                const std::string& phase) {
  JobRecord to_save;
  {
    absl::MutexLock lock(&mutex_);
    auto it = live_.find(id);
    if (it == live_.end()) return;
    Live& live = *it->second;
    int64_t now = clock_->UnixMicros();
    double seconds = static_cast<double>(now - live.rate_start_us) / 1e6;
    double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    nlohmann::json progress = {
        {"done", done}, {"total", total}, {"phase", phase}, {"rate_bytes_per_s", rate}};
    if (rate > 0 && total >= done) progress["eta_s"] = static_cast<double>(total - done) / rate;
    live.record.progress_json =
        progress.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (now - live.last_saved_us < kSaveEveryUs) return;
    live.last_saved_us = now;
    to_save = live.record;
  }
  Save(to_save, false);
}

void JobManager::Save(const JobRecord& record, bool state_changed) {
  {
    absl::MutexLock lock(&store_mutex_);
    Status saved = store_->Update(record);
    if (!saved.ok()) {
      std::fprintf(stderr, "stillpointd: job %s: %s\n", record.id.c_str(),
                   std::string(saved.message()).c_str());
    }
  }
  if (state_changed && listener_) listener_(record);
}

StatusOr<JobRecord> JobManager::Get(const std::string& id) {
  {
    absl::MutexLock lock(&mutex_);
    auto it = live_.find(id);
    if (it != live_.end()) return it->second->record;
  }
  absl::MutexLock lock(&store_mutex_);
  return store_->Get(id);
}

StatusOr<std::vector<JobRecord>> JobManager::List(const catalog::JobFilter& filter) {
  std::vector<JobRecord> jobs;
  {
    absl::MutexLock lock(&store_mutex_);
    SP_ASSIGN_OR_RETURN(jobs, store_->List(filter));
  }
  absl::MutexLock lock(&mutex_);
  for (JobRecord& job : jobs) {
    auto it = live_.find(job.id);
    if (it != live_.end()) job = it->second->record;
  }
  return jobs;
}

StatusOr<JobRecord> JobManager::Cancel(const std::string& id) {
  std::shared_ptr<Live> queued;
  {
    absl::MutexLock lock(&mutex_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      it->second->cancel->store(true);
      auto in_queue = std::find(queue_.begin(), queue_.end(), it->second);
      if (in_queue == queue_.end()) return it->second->record;  // stops when its work returns
      queued = *in_queue;
      queue_.erase(in_queue);
    }
  }
  if (queued == nullptr) {
    SP_ASSIGN_OR_RETURN(JobRecord job, Get(id));
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " has finished (", catalog::JobStateName(job.state), ")"));
  }
  Finish(queued, absl::CancelledError("cancelled before it started"));
  return Get(id);
}

StatusOr<std::map<std::string, int64_t>> JobManager::CountByState() {
  absl::MutexLock lock(&store_mutex_);
  return store_->CountByState();
}

bool JobManager::HasUnfinished(const std::string& kind, const std::string& vm) {
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, live] : live_) {
    if (live->record.kind == kind && live->record.vm == vm) return true;
  }
  return false;
}

bool JobManager::HasUnfinishedBy(const std::string& requested_by) {
  absl::MutexLock lock(&mutex_);
  for (const auto& [id, live] : live_) {
    if (live->record.requested_by == requested_by) return true;
  }
  return false;
}

StatusOr<JobRecord> JobManager::Wait(const std::string& id, Millis timeout) {
  absl::Time deadline = absl::Now() + absl::Milliseconds(timeout.count());
  {
    absl::MutexLock lock(&mutex_);
    while (live_.count(id) != 0) {
      if (changed_.WaitWithDeadline(&mutex_, deadline)) break;
    }
  }
  return Get(id);
}

nlohmann::json JobToJson(const JobRecord& job) {
  nlohmann::json out = {{"id", job.id},
                        {"kind", job.kind},
                        {"state", catalog::JobStateName(job.state)},
                        {"vm", job.vm},
                        {"requested_by", job.requested_by},
                        {"params", ParseOrEmpty(job.params_json)},
                        {"progress", ParseOrEmpty(job.progress_json)},
                        {"created", FormatUnixMicros(job.created_us)},
                        {"started", job.started_us ? FormatUnixMicros(*job.started_us) : ""},
                        {"finished", job.finished_us ? FormatUnixMicros(*job.finished_us) : ""}};
  if (job.state == JobState::kSucceeded) out["result"] = ParseOrEmpty(job.result_json);
  if (!job.error.empty()) out["error"] = {{"code", job.error_code}, {"message", job.error}};
  return out;
}

}  // namespace sp::server
