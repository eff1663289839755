// The API's routes and the checks every request passes before a handler sees it, in this order:
// the route exists (404; 405 naming the allowed methods), the caller is authenticated (401), the
// caller's role may use the route (403 — before anything is looked up, so a refused caller learns
// nothing about what exists), a cookie-authenticated write carries its CSRF token (403), path
// parameters are well-formed (400), a JSON body parses into an object (400). A handler's
// exception becomes a 500 that reveals nothing; the caller's error is logged with the request.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "server/auth.h"
#include "server/http.h"

namespace sp::server {

struct RouteContext {
  const HttpRequest& request;
  const Principal& principal;
  std::map<std::string, std::string> params;  // from the path pattern, validated
  nlohmann::json body;                        // parsed JSON object for writes, else null
};

using RouteHandler = std::function<HttpResponse(RouteContext&)>;

struct Route {
  std::string method;   // "GET", "POST", "PUT", "PATCH", "DELETE"
  std::string pattern;  // "/api/v1/vms/{vm}"
  Role role;            // the least role that may use it
  std::string summary;  // for the OpenAPI document
  RouteHandler handler;
  bool public_route = false;  // no authentication (sign-in only)
};

// Called after every request that is not a GET, whatever its outcome: the audit trail of who
// changed (or tried to change) what, from where. `who` is empty when the caller was not known.
using AuditFn = std::function<void(const HttpRequest& request, const Principal& who, int status)>;

class Router {
 public:
  explicit Router(Authenticator* auth) : auth_(auth) {}

  void Add(Route route);
  void SetAudit(AuditFn audit) { audit_ = std::move(audit); }
  HttpResponse Handle(const HttpRequest& request) const;
  const std::vector<Route>& routes() const { return routes_; }

 private:
  const Route* Match(const HttpRequest& request, std::map<std::string, std::string>* params,
                     std::vector<std::string>* allowed) const;

  HttpResponse Checked(const HttpRequest& request, Principal* principal) const;

  Authenticator* auth_;  // not owned
  std::vector<Route> routes_;
  AuditFn audit_;
};

// A path parameter as the API accepts it: 1–128 characters, none of them '/', NUL, control
// characters or the whole of "." / "..". InvalidArgument naming the parameter otherwise.
Status CheckPathParameter(const std::string& name, const std::string& value);

struct HttpError {
  int status;
  const char* code;  // "invalid_argument", "not_found", ...
};
// The HTTP status and error code of a status code (see ErrorResponse).
HttpError HttpErrorOf(absl::StatusCode code);

// Maps a status code to HTTP: InvalidArgument 400, NotFound 404, AlreadyExists 409,
// FailedPrecondition 409, PermissionDenied 403, Unauthenticated 401, ResourceExhausted 507 (space
// limit or full disk), Unavailable 503, DeadlineExceeded 504, others 500 (with a generic message).
HttpResponse ErrorResponse(const Status& status);

}  // namespace sp::server
