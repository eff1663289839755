// app::App instances for the service's threads. An App holds one catalog connection and is used
// by one thread at a time; requests and jobs lease one, use it, and give it back.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "app/app.h"

namespace sp::server {

class AppPool {
 public:
  AppPool(app::StatePaths paths, std::string monitor_program, Clock* clock = Clock::Real())
      : paths_(std::move(paths)), monitor_program_(std::move(monitor_program)), clock_(clock) {}

  class Lease {
   public:
    Lease(AppPool* pool, std::unique_ptr<app::App> app) : pool_(pool), app_(std::move(app)) {}
    Lease(Lease&&) = default;
    ~Lease() {
      if (app_) pool_->Return(std::move(app_));
    }
    app::App* operator->() const { return app_.get(); }
    app::App* get() const { return app_.get(); }

   private:
    AppPool* pool_;
    std::unique_ptr<app::App> app_;
  };

  // An App for this thread's use; a new one when none is free. Errors of app::App::Open.
  StatusOr<Lease> Acquire();
  const app::StatePaths& paths() const { return paths_; }

 private:
  void Return(std::unique_ptr<app::App> app);

  const app::StatePaths paths_;
  const std::string monitor_program_;
  Clock* const clock_;
  absl::Mutex mutex_;
  std::vector<std::unique_ptr<app::App>> free_ ABSL_GUARDED_BY(mutex_);
};

}  // namespace sp::server
