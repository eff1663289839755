// HTTP requests and responses as the service's handlers see them, independent of the transport
// (cpp-httplib serves them; tests and the fuzz target call the router directly).
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace sp::server {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string, percent-decoded
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names lower-case
  std::string body;
  std::string remote_address;  // "127.0.0.1"

  // The header's value, empty when absent. `name` lower-case.
  std::string Header(const std::string& name) const;
  // The value of cookie `name`, empty when absent.
  std::string Cookie(const std::string& name) const;
};

// A streamed body (Server-Sent Events): called repeatedly; appends the next piece to `out` (may
// wait up to about a second for one) and returns false to end the response. `out` may stay empty.
using BodyStream = std::function<bool(std::string* out)>;

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  BodyStream stream;  // set: the body is streamed instead of `body`

  static HttpResponse Json(int status, const nlohmann::json& body);
  // {"error": {"code": CODE, "message": MESSAGE, "field": FIELD?}}
  static HttpResponse Error(int status, const std::string& code, const std::string& message,
                            const std::string& field = "");
};

}  // namespace sp::server
