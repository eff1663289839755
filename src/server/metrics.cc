#include "server/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/app.h"

namespace sp::server {
namespace {

std::string Header(const std::string& name, const std::string& type, const std::string& help) {
  return absl::StrCat("# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

std::string Number(double value) { return absl::StrFormat("%.17g", value); }

double Seconds(int64_t micros) { return static_cast<double>(micros) / 1e6; }

const nlohmann::json* Member(const nlohmann::json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

double NumberAt(const nlohmann::json& object, const char* outer, const char* inner) {
  const nlohmann::json* first = Member(object, outer);
  const nlohmann::json* second = first ? Member(*first, inner) : nullptr;
  return second && second->is_number() ? second->get<double>() : 0;
}

}  // namespace

std::string LabelValue(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

void Histogram::Observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) ++buckets_[i];
  }
  ++count_;
  sum_ += seconds;
}

std::string Histogram::Render(const std::string& name) const {
  std::string out;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    absl::StrAppend(&out, name, "_bucket{le=\"", Number(kBounds[i]), "\"} ", buckets_[i], "\n");
  }
  absl::StrAppend(&out, name, "_bucket{le=\"+Inf\"} ", count_, "\n", name, "_sum ", Number(sum_),
                  "\n", name, "_count ", count_, "\n");
  return out;
}

void Metrics::JobChanged(const JobRecord& job) {
  if (!catalog::IsFinished(job.state)) return;
  stats_stale_ = true;
  absl::MutexLock lock(&mutex_);
  if (job.requested_by.rfind("schedule:", 0) == 0 && job.state == JobState::kFailed) {
    ++schedule_failures_[job.requested_by.substr(9)];
  }
  if (job.kind != "snapshot.create") return;
  if (job.state != JobState::kSucceeded) {
    ++capture_failures_[job.vm];
    return;
  }
  nlohmann::json result = nlohmann::json::parse(job.result_json, nullptr, false);
  frozen_window_.Observe(NumberAt(result, "timings_ms", "frozen_window") / 1000);
  capture_duration_.Observe(NumberAt(result, "timings_ms", "total") / 1000);
  bytes_read_ += static_cast<uint64_t>(NumberAt(result, "bytes", "read"));
  bytes_new_ += static_cast<uint64_t>(NumberAt(result, "bytes", "new"));
  bytes_reused_ += static_cast<uint64_t>(NumberAt(result, "bytes", "reused"));
}

std::string Metrics::RenderCaptures() {
  std::string out;
  out += Header("stillpoint_capture_frozen_window_seconds", "histogram",
                "Time the guest's filesystems were frozen, per capture this service ran.");
  out += frozen_window_.Render("stillpoint_capture_frozen_window_seconds");
  out += Header("stillpoint_capture_duration_seconds", "histogram",
                "Duration of each capture this service ran.");
  out += capture_duration_.Render("stillpoint_capture_duration_seconds");
  std::pair<const char*, uint64_t> bytes[] = {
      {"read", bytes_read_}, {"new", bytes_new_}, {"reused", bytes_reused_}};
  for (const auto& [kind, value] : bytes) {
    std::string name = absl::StrCat("stillpoint_capture_bytes_", kind, "_total");
    out +=
        Header(name, "counter", absl::StrCat("Bytes ", kind, " by the captures this service ran."));
    absl::StrAppend(&out, name, " ", value, "\n");
  }
  out += Header("stillpoint_capture_failures_total", "counter",
                "Capture jobs that failed or were cancelled, per VM.");
  for (const auto& [vm, count] : capture_failures_) {
    absl::StrAppend(&out, "stillpoint_capture_failures_total{vm=\"", LabelValue(vm), "\"} ", count,
                    "\n");
  }
  out += Header("stillpoint_schedule_failures_total", "counter",
                "Scheduled runs that failed, per schedule.");
  for (const auto& [schedule, count] : schedule_failures_) {
    absl::StrAppend(&out, "stillpoint_schedule_failures_total{schedule=\"", LabelValue(schedule),
                    "\"} ", count, "\n");
  }
  return out;
}

StatusOr<std::string> Metrics::RenderVms() {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps_->Acquire());
  SP_ASSIGN_OR_RETURN(auto points, app->ListSnapshots(""));
  struct Last {
    int64_t any_us = 0, complete_us = 0;
    std::string consistency;
    int64_t failed = 0;
  };
  std::map<std::string, Last> by_vm;
  for (const auto& point : points) {  // oldest first
    Last& last = by_vm[point.vm_name];
    last.any_us = point.created_us;
    if (point.state == "complete") {
      last.complete_us = point.created_us;
      last.consistency = point.consistency;
    }
    if (point.state == "failed") ++last.failed;
  }
  std::string out = Header("stillpoint_vm_last_point_timestamp_seconds", "gauge",
                           "When the VM's newest complete recovery point was taken, with its "
                           "consistency.");
  for (const auto& [vm, last] : by_vm) {
    if (last.complete_us == 0) continue;
    absl::StrAppend(&out, "stillpoint_vm_last_point_timestamp_seconds{vm=\"", LabelValue(vm),
                    "\",consistency=\"", LabelValue(last.consistency), "\"} ",
                    Number(Seconds(last.complete_us)), "\n");
  }
  out += Header("stillpoint_vm_last_attempt_timestamp_seconds", "gauge",
                "When the VM's newest capture began, whatever its outcome.");
  for (const auto& [vm, last] : by_vm) {
    absl::StrAppend(&out, "stillpoint_vm_last_attempt_timestamp_seconds{vm=\"", LabelValue(vm),
                    "\"} ", Number(Seconds(last.any_us)), "\n");
  }
  out += Header("stillpoint_vm_failed_points", "gauge",
                "Failed captures the catalog lists for the VM.");
  for (const auto& [vm, last] : by_vm) {
    absl::StrAppend(&out, "stillpoint_vm_failed_points{vm=\"", LabelValue(vm), "\"} ", last.failed,
                    "\n");
  }
  return out;
}

StatusOr<repo::RepositoryStats> Metrics::RepoStats() {
  absl::MutexLock lock(&stats_mutex_);
  absl::Time now = absl::Now();
  if (!stats_ || stats_stale_.exchange(false) || now - stats_read_at_ > kRepoStatsMaxAge) {
    stats_ = app::App::GetRepoStats({});
    stats_read_at_ = now;
  }
  return *stats_;
}

std::string Metrics::RenderRepository() {
  auto stats = RepoStats();
  std::string out = Header("stillpoint_repository_up", "gauge",
                           "1 when the repository could be read for these metrics.");
  absl::StrAppend(&out, "stillpoint_repository_up ", stats.ok() ? 1 : 0, "\n");
  if (!stats.ok()) return out;
  out += Header("stillpoint_repository_logical_bytes", "gauge",
                "Bytes the recovery points hold before deduplication and compression.");
  absl::StrAppend(&out, "stillpoint_repository_logical_bytes ", stats->logical_bytes, "\n");
  out += Header("stillpoint_repository_stored_bytes", "gauge", "Bytes the chunks take on disk.");
  absl::StrAppend(&out, "stillpoint_repository_stored_bytes ", stats->stored_bytes, "\n");
  out += Header("stillpoint_repository_recovery_points", "gauge", "Recovery points stored.");
  absl::StrAppend(&out, "stillpoint_repository_recovery_points ", stats->points, "\n");
  out += Header("stillpoint_repository_dedup_ratio", "gauge", "Logical over stored bytes.");
  absl::StrAppend(&out, "stillpoint_repository_dedup_ratio ", Number(stats->DedupRatio()), "\n");
  return out;
}

StatusOr<std::string> Metrics::RenderJobs() {
  SP_ASSIGN_OR_RETURN(auto counts, jobs_->CountByState());
  std::string out = Header("stillpoint_jobs", "gauge", "Jobs the service knows, by state.");
  for (JobState state : {JobState::kQueued, JobState::kRunning, JobState::kSucceeded,
                         JobState::kFailed, JobState::kCancelled}) {
    std::string name = catalog::JobStateName(state);
    absl::StrAppend(&out, "stillpoint_jobs{state=\"", name, "\"} ",
                    counts.count(name) ? counts[name] : 0, "\n");
  }
  return out;
}

StatusOr<std::string> Metrics::Render() {
  SP_ASSIGN_OR_RETURN(std::string vms, RenderVms());
  SP_ASSIGN_OR_RETURN(std::string jobs, RenderJobs());
  std::string captures;
  {
    absl::MutexLock lock(&mutex_);
    captures = RenderCaptures();
  }
  return absl::StrCat(vms, captures, jobs, RenderRepository());
}

}  // namespace sp::server
