// Mounts: POST /api/v1/snapshots/{id}/mounts serves a volume of a point read-only over NBD for a
// while; /api/v1/mounts lists, shows and stops them (see server/mounts.h).
#include "server/api.h"
#include "server/fields.h"
#include "server/mounts.h"

namespace sp::server {
namespace {

constexpr int64_t kDefaultLifetimeS = 3600;
constexpr int64_t kMaxLifetimeS = int64_t{7} * 24 * 3600;

HttpResponse OpenMount(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto volume = fields.String("volume", false, 128);
  auto lifetime = fields.Int("lifetime_s", 60, kMaxLifetimeS);
  for (const Status& s : {volume.status(), lifetime.status(), fields.NoOthers()}) {
    if (!s.ok()) return ErrorResponse(s);
  }
  auto mount = api->mounts->Open(c.params.at("id"), volume->value_or(""),
                                 lifetime->value_or(kDefaultLifetimeS), api::Actor(c.principal));
  if (!mount.ok()) return ErrorResponse(mount.status());
  return api::Reply(mount->ToJson(), 201);
}

}  // namespace

void AddMountRoutes(Router* router, ApiContext* api) {
  const std::string base = std::string(kApiPrefix) + "/mounts";
  router->Add({"POST", std::string(kApiPrefix) + "/snapshots/{id}/mounts", Role::kOperator,
               "Serve a volume of a recovery point read-only over NBD for a while",
               [api](RouteContext& c) { return OpenMount(api, c); }});
  router->Add({"GET", base, Role::kViewer, "List the open mounts", [api](RouteContext&) {
                 nlohmann::json out = nlohmann::json::array();
                 for (const MountInfo& mount : api->mounts->List()) out.push_back(mount.ToJson());
                 return api::Reply(nlohmann::json{{"mounts", out}});
               }});
  router->Add({"GET", base + "/{mount}", Role::kViewer, "Show a mount", [api](RouteContext& c) {
                 auto mount = api->mounts->Get(c.params.at("mount"));
                 if (!mount.ok()) return ErrorResponse(mount.status());
                 return api::Reply(mount->ToJson());
               }});
  router->Add(
      {"DELETE", base + "/{mount}", Role::kOperator, "Stop a mount", [api](RouteContext& c) {
         Status closed = api->mounts->Close(c.params.at("mount"));
         if (!closed.ok()) return ErrorResponse(closed);
         return api::Reply(nlohmann::json{{"stopped", c.params.at("mount")}});
       }});
}

}  // namespace sp::server
