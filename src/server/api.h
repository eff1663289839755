// The REST API under /api/v1: each route a thin layer over app:: (the same use cases and the
// same JSON as the CLI), long operations as jobs. The routes and their roles are listed in one
// place each (the Add*Routes functions); the OpenAPI document (openapi.json) describes exactly
// these, which a test checks.
#pragma once

#include <string>

#include "platform/clock.h"
#include "server/app_pool.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/jobs.h"
#include "server/router.h"

namespace sp::server {

class Scheduler;
class Metrics;
class MountManager;

struct ApiContext {
  AppPool* apps = nullptr;
  JobManager* jobs = nullptr;
  Authenticator* auth = nullptr;
  Scheduler* scheduler = nullptr;
  Metrics* metrics = nullptr;
  MountManager* mounts = nullptr;
  const ServerConfig* config = nullptr;
  Clock* clock = nullptr;
  std::string openapi;  // the document served at /api/v1/openapi.json
};

inline constexpr const char* kApiPrefix = "/api/v1";

void AddSessionRoutes(Router* router, ApiContext* api);
void AddVmRoutes(Router* router, ApiContext* api);
void AddSnapshotRoutes(Router* router, ApiContext* api);
void AddJobAndEventRoutes(Router* router, ApiContext* api);
void AddAdminRoutes(Router* router, ApiContext* api);  // users, tokens, settings, repository
void AddScheduleRoutes(Router* router, ApiContext* api);
void AddMetaRoutes(Router* router, ApiContext* api);  // openapi.json, /metrics
void AddMountRoutes(Router* router, ApiContext* api);

// The OpenAPI document (src/server/openapi.json, built in).
const std::string& OpenApiDocument();

// Every route of the API.
inline void AddApiRoutes(Router* router, ApiContext* api) {
  AddSessionRoutes(router, api);
  AddVmRoutes(router, api);
  AddSnapshotRoutes(router, api);
  AddJobAndEventRoutes(router, api);
  AddAdminRoutes(router, api);
  AddScheduleRoutes(router, api);
  AddMetaRoutes(router, api);
  AddMountRoutes(router, api);
}

// Helpers for the route files.
namespace api {

// The "who" of events and jobs: the user, or "token:ID".
std::string Actor(const Principal& principal);
catalog::EventOrigin Origin(const RouteContext& context, const std::string& job_id = "");
// 200 with `body`, or the error of `status`.
HttpResponse Reply(const StatusOr<nlohmann::json>& body, int status = 200);
// 202 with the job.
HttpResponse Accepted(const StatusOr<JobRecord>& job);

// Work on the state through an App leased for it.
using AppWork = std::function<StatusOr<nlohmann::json>(app::App*)>;
// `status` with what `work` returns, or its error.
HttpResponse WithApp(ApiContext* api, const AppWork& work, int status = 200);
// 202 with a new job of `kind` for `vm` (may be empty) that runs `work` with an App of its own;
// the request's body is the job's params.
HttpResponse AppJob(ApiContext* api, const RouteContext& c, const std::string& kind,
                    const std::string& vm, AppWork work);

}  // namespace api

}  // namespace sp::server
