// Fuzz target for the service's request handling: a request line ("METHOD PATH?QUERY"), header
// lines ("Name: value") and, after an empty line, a body — handled by the real router of a real
// Service over an empty state directory, as a signed-in operator (a token). A 5xx or a crash is
// a bug: outside input must only ever get a 2xx or a 4xx.
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_split.h"
#include "server/service.h"

namespace {

struct World {
  std::unique_ptr<sp::server::Service> service;
  std::string token;
};

World* MakeWorld() {
  auto* world = new World;
  char dir[] = "/tmp/sp-fuzz-XXXXXX";
  if (::mkdtemp(dir) == nullptr) std::abort();
  ::setenv("STILLPOINT_HOME", dir, 1);
  sp::app::StatePaths paths;
  paths.home = dir;
  paths.catalog = paths.home + "/catalog.db";
  paths.repo = paths.home + "/repo";
  paths.run_root = paths.home + "/run";
  sp::server::ServiceOptions options;
  options.paths = paths;
  options.run_scheduler = false;
  auto service = sp::server::Service::Create(options);
  if (!service.ok()) std::abort();
  world->service = std::move(service).value();
  auto app = sp::app::App::Open(paths);
  if (!app.ok()) std::abort();
  auto token = (*app)->CreateToken("fuzz", sp::catalog::Role::kOperator, std::nullopt, {});
  if (!token.ok()) std::abort();
  world->token = token->secret;
  return world;
}

sp::server::HttpRequest Parse(const std::string& input, const std::string& token) {
  sp::server::HttpRequest request;
  size_t blank = input.find("\n\n");
  std::string head = input.substr(0, blank);
  if (blank != std::string::npos) request.body = input.substr(blank + 2);
  std::vector<std::string> lines = absl::StrSplit(head, '\n');
  std::vector<std::string> first = absl::StrSplit(lines[0], absl::MaxSplits(' ', 1));
  request.method = first[0];
  std::string target = first.size() > 1 ? first[1] : "/";
  size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) {
    for (absl::string_view pair : absl::StrSplit(target.substr(question + 1), '&')) {
      std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
      request.query[kv[0]] = kv.size() > 1 ? kv[1] : "";
    }
  }
  request.headers["authorization"] = "Bearer " + token;
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    request.headers[lines[i].substr(0, colon)] = lines[i].substr(colon + 1);
  }
  request.remote_address = "127.0.0.1";
  return request;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* world = MakeWorld();
  std::string input(reinterpret_cast<const char*>(data), size);
  sp::server::HttpRequest request = Parse(input, world->token);
  sp::server::HttpResponse response = world->service->router().Handle(request);
  if (response.status >= 500 || response.status < 200) {
    std::fprintf(stderr, "%s %s → %d %s\n", request.method.c_str(), request.path.c_str(),
                 response.status, response.body.c_str());
    std::abort();
  }
  return 0;
}
