// stillpointd: the protection service. Serves the REST API (and later the console) over HTTPS,
// runs jobs and protection schedules, and exports metrics — all over app::, on the same state
// directory the CLI uses at the same time.
//
// Start() binds the listening socket and starts serving on background threads; errors that stop
// a start (a bad TLS pair, an address in use) come back from it. On the first start of a state
// directory without users it creates the user "admin" with a random password, returned in
// initial_admin_password() and kept in <state>/server/initial-admin-password (0600) until that
// password is changed.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "app/app.h"
#include "platform/clock.h"
#include "server/api.h"
#include "server/config.h"
#include "server/tls.h"

namespace httplib {
class SSLServer;
}

namespace sp::server {

struct ServiceOptions {
  ServerConfig config;
  app::StatePaths paths;
  std::string program;  // this binary, for VM monitors and thaw guards; empty: /proc/self/exe
  Clock* clock = Clock::Real();
  bool run_scheduler = true;
};

class Service {
 public:
  static StatusOr<std::unique_ptr<Service>> Create(ServiceOptions options);
  ~Service();

  Status Start();
  // Stops accepting, cancels running jobs, waits for the threads. Idempotent.
  void Stop();

  int port() const { return port_; }
  const TlsIdentity& tls() const { return tls_; }
  const std::string& initial_admin_password() const { return initial_admin_password_; }
  Router& router() { return *router_; }  // for tests
  JobManager& jobs() { return *jobs_; }
  Scheduler& scheduler() { return *scheduler_; }
  MountManager& mounts() { return *mounts_; }

 private:
  explicit Service(ServiceOptions options);
  Status EnsureAdmin();
  void OnJobChanged(const JobRecord& job);

  ServiceOptions options_;
  TlsIdentity tls_;
  std::string initial_admin_password_;
  std::unique_ptr<AppPool> apps_;
  std::unique_ptr<catalog::Catalog> catalog_;  // the service's own connection: jobs
  std::unique_ptr<catalog::JobStore> job_store_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<Authenticator> auth_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<MountManager> mounts_;
  ApiContext api_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<httplib::SSLServer> http_;
  std::thread serve_thread_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace sp::server
