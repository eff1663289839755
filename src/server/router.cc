#include "server/router.h"

#include <openssl/crypto.h>

#include <cstdio>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/fields.h"

namespace sp::server {
namespace {

constexpr int kMaxJsonDepth = 32;

bool IsWrite(const std::string& method) { return method != "GET"; }

// Whether `text`'s brackets nest deeper than `limit` (outside strings): the JSON parser recurses
// per level, so a body of a million '[' must be refused before it parses.
bool NestsDeeperThan(const std::string& text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

bool SameSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::vector<std::string> Segments(const std::string& path) { return absl::StrSplit(path, '/'); }

HttpResponse ParseBody(const HttpRequest& request, nlohmann::json* body) {
  if (request.body.empty()) {
    *body = nlohmann::json::object();
    return HttpResponse{};
  }
  if (NestsDeeperThan(request.body, kMaxJsonDepth)) {
    return HttpResponse::Error(400, "invalid_json", "the JSON body nests too deeply");
  }
  *body = nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body->is_discarded()) {
    return HttpResponse::Error(400, "invalid_json", "the body is not valid JSON");
  }
  if (!body->is_object()) {
    return HttpResponse::Error(400, "invalid_json", "the body must be a JSON object");
  }
  return HttpResponse{};
}

}  // namespace

Status CheckPathParameter(const std::string& name, const std::string& value) {
  bool bad = value.empty() || value.size() > 128 || value == "." || value == "..";
  for (char signed_c : value) {
    auto c = static_cast<unsigned char>(signed_c);
    bad = bad || c < 0x20 || c == 0x7f || c == '/' || c == '\\';
  }
  if (!bad) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("path parameter '", name,
                   "' must be 1 to 128 characters without '/', '\\' or control characters"));
}

HttpError HttpErrorOf(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return {400, "invalid_argument"};
    case absl::StatusCode::kUnauthenticated:
      return {401, "unauthenticated"};
    case absl::StatusCode::kPermissionDenied:
      return {403, "forbidden"};
    case absl::StatusCode::kNotFound:
      return {404, "not_found"};
    case absl::StatusCode::kAlreadyExists:
      return {409, "already_exists"};
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return {409, "failed_precondition"};
    case absl::StatusCode::kResourceExhausted:
      return {507, "resource_exhausted"};
    case absl::StatusCode::kUnavailable:
      return {503, "unavailable"};
    case absl::StatusCode::kDeadlineExceeded:
      return {504, "deadline_exceeded"};
    case absl::StatusCode::kDataLoss:
      return {500, "data_loss"};
    default:
      return {500, "internal"};
  }
}

HttpResponse ErrorResponse(const Status& status) {
  HttpError error = HttpErrorOf(status.code());
  if (std::string(error.code) == "internal") {
    std::fprintf(stderr, "stillpointd: internal error: %s\n", status.ToString().c_str());
    return HttpResponse::Error(500, "internal", "internal error; the service log has details");
  }
  return HttpResponse::Error(error.status, error.code, std::string(status.message()),
                             FieldOf(status));
}

void Router::Add(Route route) { routes_.push_back(std::move(route)); }

const Route* Router::Match(const HttpRequest& request, std::map<std::string, std::string>* params,
                           std::vector<std::string>* allowed) const {
  std::vector<std::string> path = Segments(request.path);
  for (const Route& route : routes_) {
    std::vector<std::string> pattern = Segments(route.pattern);
    if (pattern.size() != path.size()) continue;
    std::map<std::string, std::string> found;
    bool same = true;
    for (size_t i = 0; i < pattern.size() && same; ++i) {
      const std::string& part = pattern[i];
      if (part.size() > 2 && part.front() == '{' && part.back() == '}') {
        found[part.substr(1, part.size() - 2)] = path[i];
      } else {
        same = part == path[i];
      }
    }
    if (!same) continue;
    if (route.method != request.method) {
      allowed->push_back(route.method);
      continue;
    }
    *params = std::move(found);
    return &route;
  }
  return nullptr;
}

HttpResponse Router::Handle(const HttpRequest& request) const {
  Principal principal;
  HttpResponse response = Checked(request, &principal);
  if (audit_ && IsWrite(request.method)) audit_(request, principal, response.status);
  return response;
}

HttpResponse Router::Checked(const HttpRequest& request, Principal* caller) const {
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed;
  const Route* route = Match(request, &params, &allowed);
  if (route == nullptr && allowed.empty()) {
    return HttpResponse::Error(404, "not_found", "no such route: " + request.path);
  }
  if (route == nullptr) {
    HttpResponse response = HttpResponse::Error(
        405, "method_not_allowed",
        absl::StrCat(request.method, " is not allowed here; use ", absl::StrJoin(allowed, ", ")));
    response.headers.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    return response;
  }
  Principal principal;
  if (!route->public_route) {
    auto who = auth_->Authenticate(request);
    if (!who.ok()) {
      HttpResponse response = ErrorResponse(who.status());
      response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"stillpoint\"");
      return response;
    }
    if (who->role < route->role) {
      return HttpResponse::Error(
          403, "forbidden",
          absl::StrCat("the role '", catalog::RoleName(who->role), "' may not do this; it needs '",
                       catalog::RoleName(route->role), "'"));
    }
    if (who->via == Via::kSession && IsWrite(request.method) &&
        !SameSecret(request.Header("x-csrf-token"), who->csrf_token)) {
      return HttpResponse::Error(403, "csrf",
                                 "a signed-in change needs the session's X-CSRF-Token header");
    }
    principal = *who;
    *caller = principal;
  }
  for (const auto& [name, value] : params) {
    Status good = CheckPathParameter(name, value);
    if (!good.ok())
      return HttpResponse::Error(400, "invalid_argument", std::string(good.message()), name);
  }
  RouteContext context{request, principal, std::move(params), nullptr};
  if (IsWrite(request.method)) {
    HttpResponse bad = ParseBody(request, &context.body);
    if (bad.status != 200) return bad;
  }
  try {
    return route->handler(context);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "stillpointd: %s %s: unexpected exception: %s\n", request.method.c_str(),
                 request.path.c_str(), error.what());
  } catch (...) {
    std::fprintf(stderr, "stillpointd: %s %s: unexpected exception\n", request.method.c_str(),
                 request.path.c_str());
  }
  return HttpResponse::Error(500, "internal", "internal error; the service log has details");
}

}  // namespace sp::server
