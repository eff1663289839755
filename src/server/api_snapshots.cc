// /api/v1/vms/{vm}/snapshots (take one: a job) and /api/v1/snapshots (recovery points).
#include "app/app.h"
#include "server/api.h"
#include "server/fields.h"

namespace sp::server {
namespace {

StatusOr<capture::CaptureRequest> ReadCaptureRequest(const std::string& vm,
                                                     const nlohmann::json& body) {
  BodyFields fields(body);
  capture::CaptureRequest request;
  request.vm = vm;
  SP_ASSIGN_OR_RETURN(auto name, fields.String("name", false, 128));
  SP_ASSIGN_OR_RETURN(auto description, fields.String("description", false, 4096, true));
  SP_ASSIGN_OR_RETURN(auto volumes, fields.Strings("volumes", 64));
  SP_ASSIGN_OR_RETURN(auto consistency,
                      fields.Choice("consistency", {"require-app", "prefer-app", "crash-only"}));
  SP_ASSIGN_OR_RETURN(auto full, fields.Bool("full"));
  SP_RETURN_IF_ERROR(fields.NoOthers());
  request.name = name.value_or("");
  request.description = description.value_or("");
  request.volumes = volumes.value_or(std::vector<std::string>{});
  if (consistency) {
    SP_ASSIGN_OR_RETURN(capture::Policy policy, capture::ParsePolicy(*consistency));
    request.policy = policy;
  }
  request.force_full = full.value_or(false);
  return request;
}

JobWork CaptureWork(AppPool* apps, capture::CaptureRequest request) {
  return [apps, request](JobContext& job) -> StatusOr<nlohmann::json> {
    SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps->Acquire());
    capture::CaptureRequest mine = request;
    mine.cancel = job.cancel_flag();
    SP_ASSIGN_OR_RETURN(capture::CaptureResult result,
                        app->CreateSnapshot(mine, [&job](const capture::Progress& progress) {
                          job.Progress(progress.all_done_bytes, progress.total_bytes,
                                       "reading " + progress.volume);
                        }));
    return result.ToJson();
  };
}

HttpResponse CreateSnapshot(ApiContext* api, RouteContext& c) {
  const std::string& vm = c.params.at("vm");
  auto request = ReadCaptureRequest(vm, c.body);
  if (!request.ok()) return ErrorResponse(request.status());
  {
    // The VM must exist before a job is queued for it: a typo is a 404 now, not a failed job.
    auto app = api->apps->Acquire();
    if (!app.ok()) return ErrorResponse(app.status());
    auto found = (*app)->GetVm(vm);
    if (!found.ok()) return ErrorResponse(found.status());
  }
  nlohmann::json params = c.body;
  JobRequest job{"snapshot.create", vm, api::Actor(c.principal), params, true,
                 CaptureWork(api->apps, *request)};
  return api::Accepted(api->jobs->Submit(std::move(job)));
}

}  // namespace

void AddSnapshotRoutes(Router* router, ApiContext* api) {
  router->Add({"POST", std::string(kApiPrefix) + "/vms/{vm}/snapshots", Role::kOperator,
               "Take a snapshot of a VM (a job)",
               [api](RouteContext& c) { return CreateSnapshot(api, c); }});
}

}  // namespace sp::server
