// /api/v1/schedules: protection schedules (operators set them; viewers read them).
#include "app/app.h"
#include "server/api.h"
#include "server/fields.h"
#include "server/scheduler.h"

namespace sp::server {
void AddScheduleRoutes(Router* router, ApiContext* api) {
  const std::string base = std::string(kApiPrefix) + "/schedules";
  router->Add({"GET", base, Role::kViewer, "List protection schedules", [api](RouteContext&) {
                 return api::WithApp(api, [](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(auto schedules, app->ListSchedules());
                   nlohmann::json out = nlohmann::json::array();
                   for (const auto& record : schedules) {
                     out.push_back(app::ScheduleRecordToJson(record));
                   }
                   return nlohmann::json{{"schedules", out}};
                 });
               }});
  router->Add({"GET", base + "/{schedule}", Role::kViewer, "Show a protection schedule",
               [api](RouteContext& c) {
                 return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(auto record, app->GetSchedule(c.params.at("schedule")));
                   return app::ScheduleRecordToJson(record);
                 });
               }});
  router->Add({"PUT", base + "/{schedule}", Role::kOperator,
               "Set a protection schedule (named after its VM, or a group)",
               [api](RouteContext& c) {
                 return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
                   auto spec = app::ScheduleSpecFromJson(c.params.at("schedule"), c.body);
                   if (!spec.ok()) {
                     std::string message(spec.status().message());
                     return FieldError(message.substr(0, message.find(':')), message);
                   }
                   SP_ASSIGN_OR_RETURN(auto record, app->SetSchedule(*spec, api::Origin(c)));
                   return app::ScheduleRecordToJson(record);
                 });
               }});
  router->Add({"DELETE", base + "/{schedule}", Role::kOperator, "Remove a protection schedule",
               [api](RouteContext& c) {
                 return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_RETURN_IF_ERROR(app->RemoveSchedule(c.params.at("schedule"), api::Origin(c)));
                   return nlohmann::json{{"removed", c.params.at("schedule")}};
                 });
               }});
}

}  // namespace sp::server
