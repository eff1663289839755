// Mounts through the API: a volume of a recovery point served read-only over NBD (nbdkit with
// the stillpoint plugin, straight from the repository) for a limited time. Each mount has an id,
// a unix socket in the service's run directory (reachable by root only, like the state), and an
// expiry; a background thread stops mounts whose time is up, and the service stops the rest when
// it stops.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "platform/clock.h"
#include "platform/status.h"
#include "server/app_pool.h"

namespace sp::server {

struct MountInfo {
  std::string id;
  std::string point_id;
  std::string volume;
  std::string uri;     // nbd+unix:///VOLUME?socket=PATH
  std::string socket;  // the unix socket's path
  uint64_t size_bytes = 0;
  int64_t created_us = 0;
  int64_t expires_us = 0;
  std::string requested_by;

  nlohmann::json ToJson() const;
};

class MountManager {
 public:
  static constexpr int kMaxMounts = 16;

  // `apps` and `clock` (not owned) outlive the manager.
  MountManager(AppPool* apps, Clock* clock);
  ~MountManager();  // stops every mount

  // Serves `volume` (empty: the boot volume) of `point_id` for `lifetime_s` seconds.
  // NotFound for an unknown point or volume; FailedPrecondition when kMaxMounts are open;
  // Unavailable when the NBD server did not come up.
  StatusOr<MountInfo> Open(const std::string& point_id, const std::string& volume,
                           int64_t lifetime_s, const std::string& requested_by);
  std::vector<MountInfo> List();
  // NotFound for an unknown (or expired) mount.
  StatusOr<MountInfo> Get(const std::string& id);
  Status Close(const std::string& id);
  // Stops the mounts whose time is up; returns how many. (The background thread calls it.)
  int ExpireDue();

 private:
  struct Mount {
    MountInfo info;
    std::unique_ptr<app::MountedVolume> served;
  };
  void Run();

  AppPool* const apps_;
  Clock* const clock_;
  absl::Mutex mutex_;
  std::map<std::string, Mount> mounts_ ABSL_GUARDED_BY(mutex_);
  bool stopping_ ABSL_GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace sp::server
