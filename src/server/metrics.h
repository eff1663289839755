// /metrics in Prometheus' text format: per VM the time and consistency of the last point and of
// the last success, failed points; frozen-window and capture-duration histograms and byte
// counters of the captures this service ran; repository size and deduplication ratio; jobs by
// state; failed schedule runs.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "server/app_pool.h"
#include "server/jobs.h"

namespace sp::server {

class Histogram {
 public:
  static constexpr std::array<double, 10> kBounds = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120};
  void Observe(double seconds);
  // The `_bucket`, `_sum` and `_count` lines of `name`.
  std::string Render(const std::string& name) const;

 private:
  std::array<uint64_t, kBounds.size()> buckets_{};
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  Metrics(AppPool* apps, JobManager* jobs) : apps_(apps), jobs_(jobs) {}

  // Takes the numbers of a finished capture job (and counts failed schedule runs).
  void JobChanged(const JobRecord& job);
  // The whole exposition. Errors of reading the catalog.
  StatusOr<std::string> Render();

 private:
  std::string RenderCaptures() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  StatusOr<std::string> RenderVms();
  std::string RenderRepository();
  // The repository's totals, read again only when a job has ended since the last read or
  // kRepoStatsMaxAge has passed: reading them walks every manifest and chunk, too much for each
  // scrape of a large repository.
  StatusOr<repo::RepositoryStats> RepoStats();
  StatusOr<std::string> RenderJobs();

  AppPool* const apps_;
  JobManager* const jobs_;
  absl::Mutex mutex_;
  Histogram frozen_window_ ABSL_GUARDED_BY(mutex_);
  Histogram capture_duration_ ABSL_GUARDED_BY(mutex_);
  uint64_t bytes_read_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t bytes_new_ ABSL_GUARDED_BY(mutex_) = 0;
  uint64_t bytes_reused_ ABSL_GUARDED_BY(mutex_) = 0;
  std::map<std::string, uint64_t> capture_failures_ ABSL_GUARDED_BY(mutex_);   // by VM
  std::map<std::string, uint64_t> schedule_failures_ ABSL_GUARDED_BY(mutex_);  // by schedule

  static constexpr absl::Duration kRepoStatsMaxAge = absl::Minutes(5);
  absl::Mutex stats_mutex_;  // held while the totals are read, so concurrent scrapes share one read
  std::optional<StatusOr<repo::RepositoryStats>> stats_ ABSL_GUARDED_BY(stats_mutex_);
  absl::Time stats_read_at_ ABSL_GUARDED_BY(stats_mutex_);
  std::atomic<bool> stats_stale_{true};
};

// Prometheus label value escaping (backslash, quote, newline).
std::string LabelValue(const std::string& text);

}  // namespace sp::server
