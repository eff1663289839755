#include "server/mounts.h"

#include <openssl/rand.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace sp::server {
namespace {

std::string NewMountId() {
  uint8_t bytes[6] = {};
  RAND_bytes(bytes, sizeof(bytes));
  std::string id = "m-";
  for (uint8_t b : bytes) absl::StrAppendFormat(&id, "%02x", b);
  return id;
}

std::string SocketOf(const std::string& uri) {
  size_t at = uri.find("socket=");
  return at == std::string::npos ? "" : uri.substr(at + 7);
}

}  // namespace

nlohmann::json MountInfo::ToJson() const {
  return {{"id", id},
          {"point_id", point_id},
          {"volume", volume},
          {"uri", uri},
          {"socket", socket},
          {"size_bytes", size_bytes},
          {"created", FormatUnixMicros(created_us)},
          {"expires", FormatUnixMicros(expires_us)},
          {"requested_by", requested_by}};
}

MountManager::MountManager(AppPool* apps, Clock* clock)
    : apps_(apps), clock_(clock), thread_([this] { Run(); }) {}

MountManager::~MountManager() {
  {
    absl::MutexLock lock(&mutex_);
    stopping_ = true;
  }
  thread_.join();
  std::map<std::string, Mount> mounts;
  {
    absl::MutexLock lock(&mutex_);
    mounts.swap(mounts_);
  }
  for (auto& [id, mount] : mounts) mount.served->server->Stop().IgnoreError();
}

void MountManager::Run() {
  while (true) {
    {
      absl::MutexLock lock(&mutex_);
      if (mutex_.AwaitWithTimeout(absl::Condition(&stopping_), absl::Seconds(1))) return;
    }
    ExpireDue();
  }
}

StatusOr<MountInfo> MountManager::Open(const std::string& point_id, const std::string& volume,
                                       int64_t lifetime_s, const std::string& requested_by) {
  {
    absl::MutexLock lock(&mutex_);
    if (mounts_.size() >= static_cast<size_t>(kMaxMounts)) {
      return absl::FailedPreconditionError(
          absl::StrCat(kMaxMounts,
                       " mounts are open; stop one (DELETE /api/v1/mounts/ID) or wait for one to "
                       "expire"));
    }
  }
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps_->Acquire());
  SP_ASSIGN_OR_RETURN(app::MountedVolume served, app->MountVolume({point_id, volume, "", 0}));
  Mount mount;
  mount.info.id = NewMountId();
  mount.info.point_id = served.point_id;
  mount.info.volume = served.volume;
  mount.info.uri = served.server->uri();
  mount.info.socket = SocketOf(mount.info.uri);
  mount.info.size_bytes = served.server->size();
  mount.info.created_us = clock_->UnixMicros();
  mount.info.expires_us = mount.info.created_us + lifetime_s * 1'000'000;
  mount.info.requested_by = requested_by;
  mount.served = std::make_unique<app::MountedVolume>(std::move(served));
  MountInfo info = mount.info;
  absl::MutexLock lock(&mutex_);
  mounts_.emplace(info.id, std::move(mount));
  return info;
}

std::vector<MountInfo> MountManager::List() {
  absl::MutexLock lock(&mutex_);
  std::vector<MountInfo> out;
  for (const auto& [id, mount] : mounts_) out.push_back(mount.info);
  return out;
}

StatusOr<MountInfo> MountManager::Get(const std::string& id) {
  absl::MutexLock lock(&mutex_);
  auto it = mounts_.find(id);
  if (it == mounts_.end()) return absl::NotFoundError(absl::StrCat("no mount '", id, "'"));
  return it->second.info;
}

Status MountManager::Close(const std::string& id) {
  Mount mount;
  {
    absl::MutexLock lock(&mutex_);
    auto it = mounts_.find(id);
    if (it == mounts_.end()) return absl::NotFoundError(absl::StrCat("no mount '", id, "'"));
    mount = std::move(it->second);
    mounts_.erase(it);
  }
  return mount.served->server->Stop();
}

int MountManager::ExpireDue() {
  int64_t now = clock_->UnixMicros();
  std::vector<Mount> due;
  {
    absl::MutexLock lock(&mutex_);
    for (auto it = mounts_.begin(); it != mounts_.end();) {
      if (it->second.info.expires_us > now) {
        ++it;
        continue;
      }
      due.push_back(std::move(it->second));
      it = mounts_.erase(it);
    }
  }
  for (Mount& mount : due) mount.served->server->Stop().IgnoreError();
  return static_cast<int>(due.size());
}

}  // namespace sp::server
