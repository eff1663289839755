// /api/v1/jobs (list, show, cancel) and /api/v1/events (list, and a live Server-Sent Events
// stream of the same records).
#include <thread>

#include "absl/strings/numbers.h"
#include "app/app.h"
#include "server/api.h"
#include "server/fields.h"

namespace sp::server {
namespace {

constexpr Millis kStreamPoll{400};
constexpr int kHeartbeatPolls = 25;  // a comment line about every 10 s keeps proxies from closing

StatusOr<catalog::JobFilter> JobFilterOf(const HttpRequest& request) {
  catalog::JobFilter filter;
  auto vm = request.query.find("vm");
  if (vm != request.query.end()) filter.vm = vm->second;
  auto state = request.query.find("state");
  if (state != request.query.end()) {
    filter.state = catalog::ParseJobState(state->second);
    if (!filter.state) {
      return FieldError("state", "must be queued, running, succeeded, failed or cancelled");
    }
  }
  SP_ASSIGN_OR_RETURN(int64_t limit, QueryInt(request.query, "limit", 100, 1, 1000));
  SP_ASSIGN_OR_RETURN(int64_t offset, QueryInt(request.query, "offset", 0, 0, INT32_MAX));
  filter.limit = static_cast<int>(limit);
  filter.offset = static_cast<int>(offset);
  return filter;
}

StatusOr<catalog::EventFilter> EventFilterOf(app::App* app, const HttpRequest& request) {
  catalog::EventFilter filter;
  auto vm = request.query.find("vm");
  if (vm != request.query.end()) {
    SP_ASSIGN_OR_RETURN(catalog::VmRecord record, app->GetVm(vm->second));
    filter.vm_id = record.id;
  }
  auto kind = request.query.find("kind");
  if (kind != request.query.end()) filter.kind_prefix = kind->second;
  SP_ASSIGN_OR_RETURN(filter.since_us, QueryTime(request.query, "since"));
  SP_ASSIGN_OR_RETURN(filter.until_us, QueryTime(request.query, "until"));
  SP_ASSIGN_OR_RETURN(int64_t limit, QueryInt(request.query, "limit", 50, 1, 1000));
  SP_ASSIGN_OR_RETURN(int64_t offset, QueryInt(request.query, "offset", 0, 0, INT32_MAX));
  filter.limit = static_cast<int>(limit);
  filter.offset = static_cast<int>(offset);
  return filter;
}

StatusOr<nlohmann::json> ListEvents(ApiContext* api, const HttpRequest& request) {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
  SP_ASSIGN_OR_RETURN(catalog::EventFilter filter, EventFilterOf(app.get(), request));
  SP_ASSIGN_OR_RETURN(auto events, app->QueryEvents(filter));
  nlohmann::json out = nlohmann::json::array();
  for (const auto& event : events) out.push_back(catalog::EventToJson(event));
  return nlohmann::json{{"events", out}};
}

// The SSE stream: every event after `after` (or from now), as `id:`, `event:` and `data:` lines.
HttpResponse StreamEvents(ApiContext* api, const HttpRequest& request) {
  auto app = api->apps->Acquire();
  if (!app.ok()) return ErrorResponse(app.status());
  auto filter = EventFilterOf(app->get(), request);
  if (!filter.ok()) return ErrorResponse(filter.status());
  std::string after_text = request.Header("last-event-id");
  if (after_text.empty() && request.query.count("after")) after_text = request.query.at("after");
  int64_t after = 0;
  if (!after_text.empty() && !absl::SimpleAtoi(after_text, &after)) {
    return ErrorResponse(FieldError("after", "must be an event id"));
  }
  if (after_text.empty()) {
    auto newest = app->get()->QueryEvents({});
    if (newest.ok() && !newest->empty()) after = newest->front().id;
  }
  filter->after_id = after;
  filter->limit = 100;
  filter->offset = 0;
  auto lease = std::make_shared<AppPool::Lease>(std::move(app).value());
  auto state = std::make_shared<std::pair<catalog::EventFilter, int>>(*filter, 0);
  HttpResponse response;
  response.content_type = "text/event-stream";
  response.headers.emplace_back("Cache-Control", "no-store");
  response.stream = [lease, state](std::string* out) -> bool {
    auto events = (*lease)->QueryEvents(state->first);
    if (!events.ok()) return false;
    for (const auto& event : *events) {
      absl::StrAppend(out, "id: ", event.id, "\nevent: ", event.kind, "\ndata: ",
                      catalog::EventToJson(event).dump(-1, ' ', false,
                                                       nlohmann::json::error_handler_t::replace),
                      "\n\n");
      state->first.after_id = event.id;
    }
    if (events->empty()) {
      if (++state->second % kHeartbeatPolls == 0) out->append(": still here\n\n");
      std::this_thread::sleep_for(kStreamPoll);
    }
    return true;
  };
  return response;
}

}  // namespace

void AddJobAndEventRoutes(Router* router, ApiContext* api) {
  const std::string jobs = std::string(kApiPrefix) + "/jobs";
  router->Add({"GET", jobs, Role::kViewer, "List jobs, newest first", [api](RouteContext& c) {
                 auto result = [&]() -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(catalog::JobFilter filter, JobFilterOf(c.request));
                   SP_ASSIGN_OR_RETURN(auto list, api->jobs->List(filter));
                   nlohmann::json out = nlohmann::json::array();
                   for (const JobRecord& job : list) out.push_back(JobToJson(job));
                   return nlohmann::json{{"jobs", out}};
                 }();
                 return api::Reply(result);
               }});
  router->Add({"GET", jobs + "/{job}", Role::kViewer, "Show a job with its progress",
               [api](RouteContext& c) {
                 auto job = api->jobs->Get(c.params.at("job"));
                 if (!job.ok()) return ErrorResponse(job.status());
                 return HttpResponse::Json(200, JobToJson(*job));
               }});
  router->Add({"POST", jobs + "/{job}/cancel", Role::kOperator,
               "Cancel a job (a capture thaws the guest and discards its point)",
               [api](RouteContext& c) {
                 auto job = api->jobs->Cancel(c.params.at("job"));
                 if (!job.ok()) return ErrorResponse(job.status());
                 return HttpResponse::Json(200, JobToJson(*job));
               }});
  const std::string events = std::string(kApiPrefix) + "/events";
  router->Add({"GET", events, Role::kViewer, "List events, newest first",
               [api](RouteContext& c) { return api::Reply(ListEvents(api, c.request)); }});
  router->Add({"GET", events + "/stream", Role::kViewer,
               "Follow events live (Server-Sent Events; resumes after Last-Event-ID)",
               [api](RouteContext& c) { return StreamEvents(api, c.request); }});
}

}  // namespace sp::server
