#include "server/app_pool.h"

namespace sp::server {

// Kept for reuse at most; more are closed when given back (a burst of requests leaves no pile).
constexpr size_t kMaxFree = 16;

StatusOr<AppPool::Lease> AppPool::Acquire() {
  {
    absl::MutexLock lock(&mutex_);
    if (!free_.empty()) {
      std::unique_ptr<app::App> app = std::move(free_.back());
      free_.pop_back();
      return Lease(this, std::move(app));
    }
  }
  SP_ASSIGN_OR_RETURN(std::unique_ptr<app::App> app,
                      app::App::Open(paths_, monitor_program_, clock_));
  return Lease(this, std::move(app));
}

void AppPool::Return(std::unique_ptr<app::App> app) {
  absl::MutexLock lock(&mutex_);
  if (free_.size() < kMaxFree) free_.push_back(std::move(app));
}

}  // namespace sp::server
