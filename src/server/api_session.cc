// Sign-in for the console (a session cookie and its CSRF token) and the helpers the route files
// share.
#include "absl/strings/str_cat.h"
#include "server/api.h"
#include "server/fields.h"

namespace sp::server {

namespace api {

std::string Actor(const Principal& principal) {
  if (principal.via == Via::kToken)
    return absl::StrCat(principal.user, " (token ", principal.token_id, ")");
  return principal.user;
}

catalog::EventOrigin Origin(const RouteContext& context, const std::string& job_id) {
  return {Actor(context.principal), context.request.remote_address, job_id};
}

HttpResponse Reply(const StatusOr<nlohmann::json>& body, int status) {
  if (!body.ok()) return ErrorResponse(body.status());
  return HttpResponse::Json(status, *body);
}

HttpResponse Accepted(const StatusOr<JobRecord>& job) {
  if (!job.ok()) return ErrorResponse(job.status());
  HttpResponse response = HttpResponse::Json(202, {{"job", JobToJson(*job)}});
  response.headers.emplace_back("Location", absl::StrCat(kApiPrefix, "/jobs/", job->id));
  return response;
}

HttpResponse WithApp(ApiContext* api, const AppWork& work, int status) {
  auto result = [&]() -> StatusOr<nlohmann::json> {
    SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
    return work(app.get());
  }();
  return Reply(result, status);
}

HttpResponse AppJob(ApiContext* api, const RouteContext& c, const std::string& kind,
                    const std::string& vm, AppWork work) {
  JobRequest request{
      kind,
      vm,
      Actor(c.principal),
      c.body,
      false,
      [apps = api->apps, work = std::move(work)](JobContext&) -> StatusOr<nlohmann::json> {
        SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps->Acquire());
        return work(app.get());
      }};
  return Accepted(api->jobs->Submit(std::move(request)));
}

}  // namespace api

namespace {

nlohmann::json WhoJson(const std::string& user, Role role) {
  return {{"user", user}, {"role", catalog::RoleName(role)}};
}

HttpResponse SignInRoute(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto user = fields.String("user", true, 64);
  auto password = fields.String("password", true, 1024);
  Status good = user.ok() ? password.status() : user.status();
  if (good.ok()) good = fields.NoOthers();
  if (!good.ok()) return ErrorResponse(good);
  auto signed_in = api->auth->Login(**user, **password, c.request.remote_address);
  if (absl::IsResourceExhausted(signed_in.status())) {
    HttpResponse response =
        HttpResponse::Error(429, "throttled", std::string(signed_in.status().message()));
    response.headers.emplace_back("Retry-After", "60");
    return response;
  }
  if (!signed_in.ok()) return ErrorResponse(signed_in.status());
  nlohmann::json body = WhoJson(signed_in->user, signed_in->role);
  body["csrf_token"] = signed_in->csrf_token;
  body["expires"] = FormatUnixMicros(signed_in->expires_us);
  HttpResponse response = HttpResponse::Json(200, body);
  response.headers.emplace_back(
      "Set-Cookie", absl::StrCat(kSessionCookie, "=", signed_in->session,
                                 "; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=",
                                 kSessionLifetime.count() / 1000));
  return response;
}

}  // namespace

void AddSessionRoutes(Router* router, ApiContext* api) {
  const std::string base = std::string(kApiPrefix) + "/session";
  Route sign_in{"POST", base, Role::kViewer,
                "Sign in with user and password (sets the session "
                "cookie; returns the CSRF token)",
                [api](RouteContext& c) { return SignInRoute(api, c); }};
  sign_in.public_route = true;
  router->Add(std::move(sign_in));
  router->Add({"GET", base, Role::kViewer, "Who is signed in (or whose token this is)",
               [](RouteContext& c) {
                 nlohmann::json body = WhoJson(c.principal.user, c.principal.role);
                 body["via"] = c.principal.via == Via::kToken ? "token" : "session";
                 if (c.principal.via == Via::kSession) body["csrf_token"] = c.principal.csrf_token;
                 return HttpResponse::Json(200, body);
               }});
  router->Add({"DELETE", base, Role::kViewer, "Sign out", [api](RouteContext& c) {
                 if (c.principal.via == Via::kSession)
                   api->auth->Logout(c.principal.session_digest);
                 HttpResponse response = HttpResponse::Json(200, {{"signed_out", true}});
                 response.headers.emplace_back("Set-Cookie",
                                               absl::StrCat(kSessionCookie,
                                                            "=; Path=/; HttpOnly; Secure; "
                                                            "SameSite=Strict; Max-Age=0"));
                 return response;
               }});
}

}  // namespace sp::server
