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

JobWork CaptureWork(AppPool* apps, const capture::CaptureRequest& request) {
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
  JobRequest job{"snapshot.create",
                 vm,
                 api::Actor(c.principal),
                 params,
                 true,
                 CaptureWork(api->apps, *request)};
  return api::Accepted(api->jobs->Submit(std::move(job)));
}

// Points matching the query's filters (vm, state, consistency, since, until), newest first,
// one page of them.
StatusOr<nlohmann::json> ListPoints(ApiContext* api, const HttpRequest& request) {
  auto text = [&](const char* key) {
    auto it = request.query.find(key);
    return it == request.query.end() ? std::string() : it->second;
  };
  SP_ASSIGN_OR_RETURN(auto since, QueryTime(request.query, "since"));
  SP_ASSIGN_OR_RETURN(auto until, QueryTime(request.query, "until"));
  SP_ASSIGN_OR_RETURN(int64_t limit, QueryInt(request.query, "limit", 100, 1, 1000));
  SP_ASSIGN_OR_RETURN(int64_t offset, QueryInt(request.query, "offset", 0, 0, INT32_MAX));
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
  SP_ASSIGN_OR_RETURN(auto points, app->ListSnapshots(text("vm")));
  nlohmann::json out = nlohmann::json::array();
  int64_t skipped = 0, total = 0;
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    if (!text("state").empty() && it->state != text("state")) continue;
    if (!text("consistency").empty() && it->consistency != text("consistency")) continue;
    if ((since && it->created_us < *since) || (until && it->created_us > *until)) continue;
    ++total;
    if (skipped++ < offset || static_cast<int64_t>(out.size()) >= limit) continue;
    out.push_back(app::PointRecordJson(*it));
  }
  return nlohmann::json{{"recovery_points", out}, {"total", total}};
}

StatusOr<nlohmann::json> ShowPoint(ApiContext* api, const std::string& id) {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
  SP_ASSIGN_OR_RETURN(app::SnapshotDetails details, app->GetSnapshot(id));
  if (details.unfinished) return app::PointRecordJson(*details.unfinished);
  return app::PointJson(*details.manifest);
}

// The VM a point belongs to, for the job's record; NotFound for an unknown point.
StatusOr<std::string> PointVm(ApiContext* api, const std::string& id) {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
  SP_ASSIGN_OR_RETURN(app::SnapshotDetails details, app->GetSnapshot(id));
  return details.manifest ? details.manifest->vm_name : details.unfinished->vm_name;
}

HttpResponse CreateVmFrom(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto name = fields.String("name", true, 64);
  for (const Status& s : {name.status(), fields.NoOthers()}) {
    if (!s.ok()) return ErrorResponse(s);
  }
  auto vm = PointVm(api, c.params.at("id"));
  if (!vm.ok()) return ErrorResponse(vm.status());
  app::NewVmFromSnapshotRequest request{c.params.at("id"), **name, ""};
  return api::AppJob(
      api, c, "snapshot.create-vm", **name, [request](app::App* app) -> StatusOr<nlohmann::json> {
        SP_ASSIGN_OR_RETURN(restore::NewVmResult result, app->CreateVmFromSnapshot(request));
        return app::NewVmJson(result);
      });
}

HttpResponse RestoreInPlace(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto vm = fields.String("vm", true, 128);
  auto volumes = fields.Strings("volumes", 64);
  for (const Status& s : {vm.status(), volumes.status(), fields.NoOthers()}) {
    if (!s.ok()) return ErrorResponse(s);
  }
  std::string id = c.params.at("id"), target = **vm;
  // An unknown point or VM is a 404 now, not a job that fails later.
  Status known = [&]() -> Status {
    SP_RETURN_IF_ERROR(PointVm(api, id).status());
    SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
    return app->GetVm(target).status();
  }();
  if (!known.ok()) return ErrorResponse(known);
  std::vector<std::string> selected = volumes->value_or(std::vector<std::string>{});
  return api::AppJob(api, c, "snapshot.restore", target,
                     [id, target, selected](app::App* app) -> StatusOr<nlohmann::json> {
                       SP_ASSIGN_OR_RETURN(app::VmRestoreResult result,
                                           app->RestoreVm(target, id, selected));
                       return app::RestoreJson(result);
                     });
}

HttpResponse Export(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto dir = fields.String("dir", true, 4096);
  auto format = fields.Choice("format", {"qcow2", "raw"});
  auto volumes = fields.Strings("volumes", 64);
  for (const Status& s : {dir.status(), format.status(), volumes.status(), fields.NoOthers()}) {
    if (!s.ok()) return ErrorResponse(s);
  }
  if ((*dir)->front() != '/') return ErrorResponse(FieldError("dir", "must be an absolute path"));
  auto vm = PointVm(api, c.params.at("id"));
  if (!vm.ok()) return ErrorResponse(vm.status());
  restore::ExportRequest request;
  request.point_id = c.params.at("id");
  request.dir = **dir;
  request.format = format->value_or("qcow2") == "raw" ? restore::ImageFormat::kRaw
                                                      : restore::ImageFormat::kQcow2;
  request.volumes = volumes->value_or(std::vector<std::string>{});
  return api::AppJob(
      api, c, "snapshot.export", *vm, [request](app::App* app) -> StatusOr<nlohmann::json> {
        SP_ASSIGN_OR_RETURN(restore::ExportResult result, app->ExportSnapshot(request));
        return app::ExportJson(request.dir, result);
      });
}

HttpResponse Import(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto dir = fields.String("dir", true, 4096);
  for (const Status& s : {dir.status(), fields.NoOthers()}) {
    if (!s.ok()) return ErrorResponse(s);
  }
  if ((*dir)->front() != '/') return ErrorResponse(FieldError("dir", "must be an absolute path"));
  std::string from = **dir;
  return api::AppJob(api, c, "snapshot.import", "",
                     [from](app::App* app) -> StatusOr<nlohmann::json> {
                       SP_ASSIGN_OR_RETURN(restore::ImportResult result, app->ImportSnapshot(from));
                       return app::ImportJson(result);
                     });
}

}  // namespace

void AddSnapshotRoutes(Router* router, ApiContext* api) {
  router->Add({"POST", std::string(kApiPrefix) + "/vms/{vm}/snapshots", Role::kOperator,
               "Take a snapshot of a VM (a job)",
               [api](RouteContext& c) { return CreateSnapshot(api, c); }});
  const std::string base = std::string(kApiPrefix) + "/snapshots";
  router->Add({"GET", base, Role::kViewer,
               "List recovery points (filters: vm, state, consistency, since, until; paged)",
               [api](RouteContext& c) { return api::Reply(ListPoints(api, c.request)); }});
  router->Add({"GET", base + "/{id}", Role::kViewer, "Show a recovery point in full",
               [api](RouteContext& c) { return api::Reply(ShowPoint(api, c.params.at("id"))); }});
  router->Add({"DELETE", base + "/{id}", Role::kOperator, "Delete a recovery point",
               [api](RouteContext& c) {
                 auto result = [&]() -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
                   SP_ASSIGN_OR_RETURN(repo::Manifest gone,
                                       app->DeleteSnapshot({}, c.params.at("id")));
                   return nlohmann::json{{"deleted", gone.id}};
                 }();
                 return api::Reply(result);
               }});
  router->Add({"POST", base + "/{id}/create-vm", Role::kOperator,
               "Create a new VM from a recovery point (a job)",
               [api](RouteContext& c) { return CreateVmFrom(api, c); }});
  router->Add({"POST", base + "/{id}/restore", Role::kOperator,
               "Put a stopped VM's disks back to a recovery point (a job)",
               [api](RouteContext& c) { return RestoreInPlace(api, c); }});
  router->Add({"POST", base + "/{id}/export", Role::kAdmin,
               "Export a recovery point to a directory on this host (a job)",
               [api](RouteContext& c) { return Export(api, c); }});
  router->Add({"POST", base + "/import", Role::kAdmin,
               "Import an export from a directory on this host (a job)",
               [api](RouteContext& c) { return Import(api, c); }});
  router->Add({"POST", base + "/{id}/verify", Role::kOperator,
               "Re-read every chunk of a recovery point (a job)", [api](RouteContext& c) {
                 Status none = BodyFields(c.body).NoOthers();
                 if (!none.ok()) return ErrorResponse(none);
                 std::string id = c.params.at("id");
                 auto vm = PointVm(api, id);
                 if (!vm.ok()) return ErrorResponse(vm.status());
                 return api::AppJob(
                     api, c, "snapshot.verify", *vm, [id](app::App*) -> StatusOr<nlohmann::json> {
                       SP_ASSIGN_OR_RETURN(repo::VerifyReport report, app::App::VerifyRepo({}, id));
                       SP_RETURN_IF_ERROR(app::App::VerifyVerdict(report));
                       return app::VerifyJson(report);
                     });
               }});
}

}  // namespace sp::server
