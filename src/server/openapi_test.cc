// The OpenAPI document built into the service (src/server/openapi.json) against the router the
// service builds: the same routes with the same roles and path parameters, and answers whose
// JSON has the fields the document's schemas give them. tools/openapi/lint.sh checks the
// document itself with a standard validator.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "platform/process.h"
#include "server/service.h"
#include "testing/temp_dir.h"

namespace sp::server {
namespace {

using nlohmann::json;

const char* const kMethods[] = {"get",   "put",  "post",    "delete",
                                "patch", "head", "options", "trace"};

std::vector<std::string> TemplateParameters(const std::string& path) {
  std::vector<std::string> names;
  for (size_t open = path.find('{'); open != std::string::npos; open = path.find('{', open + 1)) {
    size_t close = path.find('}', open);
    if (close == std::string::npos) break;
    names.push_back(path.substr(open + 1, close - open - 1));
  }
  return names;
}

// The member `key` of `object`, or null (which iterates as empty) when it has none.
const json& Member(const json& object, const char* key) {
  static const json* const kNull = new json();
  if (!object.is_object()) return *kNull;
  auto it = object.find(key);
  return it == object.end() ? *kNull : *it;
}

// Where a local "$ref" points in `document`.
const json& Resolve(const json& document, const json& node) {
  if (!node.is_object() || !node.contains("$ref")) return node;
  std::string ref = node["$ref"];
  return document.at(json::json_pointer(ref.substr(1)));
}

// Checks JSON values against the document's schemas, in the subset of JSON Schema the document
// uses ($ref, allOf, anyOf, type, nullable, enum, properties, required, additionalProperties,
// items). A field an answer has but its schema does not list is a problem: the document must
// describe everything the handlers send.
class SchemaChecker {
 public:
  explicit SchemaChecker(const json& document) : document_(document) {}

  std::vector<std::string> Problems(const json& schema, const json& value) {
    problems_.clear();
    Check(schema, value, "$");
    return problems_;
  }

 private:
  // The properties, required fields and additionalProperties of an object schema, with allOf's
  // parts merged in.
  void Merge(const json& node, json* merged) {
    const json& schema = Resolve(document_, node);
    for (const auto& part : Member(schema, "allOf")) Merge(part, merged);
    for (const auto& [key, value] : Member(schema, "properties").items()) {
      (*merged)["properties"][key] = value;
    }
    for (const auto& key : Member(schema, "required")) {
      (*merged)["required"].push_back(key);
    }
    for (const char* key : {"type", "nullable", "enum", "items", "anyOf", "additionalProperties"}) {
      if (schema.contains(key)) (*merged)[key] = schema[key];
    }
  }

  static bool HasType(const std::string& type, const json& value) {
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "integer") return value.is_number_integer();
    if (type == "number") return value.is_number();
    if (type == "boolean") return value.is_boolean();
    return false;
  }

  void Check(const json& node, const json& value, const std::string& where) {
    json schema = json::object();
    Merge(node, &schema);
    if (value.is_null() && schema.value("nullable", false)) return;
    if (schema.contains("anyOf")) {
      CheckAnyOf(schema["anyOf"], value, where);
      return;
    }
    if (schema.contains("type") && !HasType(schema["type"], value)) {
      problems_.push_back(absl::StrCat(where, ": is ", value.type_name(), ", documented as ",
                                       schema["type"].get<std::string>()));
      return;
    }
    const json& allowed = Member(schema, "enum");
    if (allowed.is_array() && std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
      problems_.push_back(absl::StrCat(where, ": ", value.dump(), " is not in its enum"));
    }
    if (value.is_array() && schema.contains("items")) {
      for (size_t i = 0; i < value.size(); ++i) {
        Check(schema["items"], value[i], absl::StrCat(where, "[", i, "]"));
      }
    }
    if (value.is_object()) CheckObject(schema, value, where);
  }

  // Passes when one alternative matches; else reports the problems of the closest one.
  void CheckAnyOf(const json& alternatives, const json& value, const std::string& where) {
    std::vector<std::string> outer = std::move(problems_), closest;
    for (const auto& alternative : alternatives) {
      problems_.clear();
      Check(alternative, value, where);
      if (problems_.empty()) {
        problems_ = std::move(outer);
        return;
      }
      if (closest.empty() || problems_.size() < closest.size()) closest = problems_;
    }
    problems_ = std::move(outer);
    problems_.push_back(absl::StrCat(where, ": matches none of its anyOf; the closest one:"));
    problems_.insert(problems_.end(), closest.begin(), closest.end());
  }

  void CheckObject(const json& schema, const json& value, const std::string& where) {
    for (const auto& key : Member(schema, "required")) {
      if (!value.contains(key)) {
        problems_.push_back(
            absl::StrCat(where, ": lacks the required field ", key.get<std::string>()));
      }
    }
    const json& properties = Member(schema, "properties");
    const json& extra = Member(schema, "additionalProperties");
    for (const auto& [key, field] : value.items()) {
      std::string inner = absl::StrCat(where, ".", key);
      if (properties.contains(key)) {
        Check(properties[key], field, inner);
      } else if (extra.is_object()) {
        Check(extra, field, inner);
      } else if (!properties.empty()) {  // an object without properties is free-form
        problems_.push_back(absl::StrCat(inner, ": is not in the document"));
      }
    }
  }

  const json& document_;
  std::vector<std::string> problems_;
};

class OpenApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::setenv("STILLPOINT_HOME", dir_.path().c_str(), 1);
    paths_.home = dir_.path();
    paths_.catalog = dir_.path() + "/catalog.db";
    paths_.repo = dir_.path() + "/repo";
    paths_.run_root = dir_.path() + "/run";
    ServiceOptions options;
    options.paths = paths_;
    options.run_scheduler = false;
    auto service = Service::Create(options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(service).value();
    document_ = json::parse(OpenApiDocument(), nullptr, false);
    ASSERT_TRUE(document_.is_object()) << "src/server/openapi.json is not a JSON object";
  }

  const std::vector<Route>& Routes() { return service_->router().routes(); }

  // The operation of `method` ("GET") at `path` in the document, or null.
  const json* Operation(const std::string& method, const std::string& path) {
    const json& paths = document_["paths"];
    if (!paths.contains(path)) return nullptr;
    std::string lower = absl::AsciiStrToLower(method);
    return paths[path].contains(lower) ? &paths[path][lower] : nullptr;
  }

  // The path parameters `operation` (at `path`) declares, with the path item's own.
  std::set<std::string> DeclaredPathParameters(const std::string& path, const json& operation) {
    std::set<std::string> names;
    json all = json::array();
    for (const auto& node : Member(document_["paths"][path], "parameters")) all.push_back(node);
    for (const auto& node : Member(operation, "parameters")) all.push_back(node);
    for (const auto& node : all) {
      const json& parameter = Resolve(document_, node);
      if (parameter.value("in", "") == "path" && parameter.value("required", false)) {
        names.insert(parameter.value("name", ""));
      }
    }
    return names;
  }

  testing::TempDir dir_;
  app::StatePaths paths_;
  std::unique_ptr<Service> service_;
  json document_;
};

TEST_F(OpenApiTest, TheServiceServesTheBuiltInDocument) {
  EXPECT_EQ(document_["openapi"].get<std::string>().substr(0, 2), "3.");
  auto app = app::App::Open(paths_, "", Clock::Real());
  ASSERT_TRUE(app.ok());
  auto token = (*app)->CreateToken("t", catalog::Role::kViewer, std::nullopt, {"test", "", ""});
  ASSERT_TRUE(token.ok());
  HttpRequest request{"GET", "/api/v1/openapi.json", {}, {}, "", "127.0.0.1"};
  request.headers["authorization"] = "Bearer " + token->secret;
  HttpResponse response = service_->router().Handle(request);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(response.body, OpenApiDocument());
}

TEST_F(OpenApiTest, EveryRouteIsDocumentedWithItsRoleAndSecurity) {
  ASSERT_GT(Routes().size(), 40u);
  for (const Route& route : Routes()) {
    SCOPED_TRACE(route.method + " " + route.pattern);
    const json* operation = Operation(route.method, route.pattern);
    ASSERT_NE(operation, nullptr) << "not in src/server/openapi.json";
    EXPECT_EQ(operation->value("x-stillpoint-role", ""), catalog::RoleName(route.role));
    EXPECT_FALSE(operation->value("summary", "").empty());
    EXPECT_FALSE(operation->value("operationId", "").empty());
    ASSERT_TRUE(operation->contains("security"));
    const json& security = (*operation)["security"];
    if (route.public_route) {
      EXPECT_EQ(security, json::array()) << "a public route needs no credentials";
      continue;
    }
    EXPECT_TRUE(std::find(security.begin(), security.end(), json{{"bearerAuth", json::array()}}) !=
                security.end());
    json session = {{"sessionCookie", json::array()}};
    if (route.method != "GET") session["csrfToken"] = json::array();
    EXPECT_TRUE(std::find(security.begin(), security.end(), session) != security.end())
        << "expected " << session.dump() << " in " << security.dump();
  }
}

TEST_F(OpenApiTest, EveryDocumentedOperationIsARoute) {
  std::set<std::pair<std::string, std::string>> routes;
  for (const Route& route : Routes()) routes.emplace(route.method, route.pattern);
  int operations = 0;
  for (const auto& [path, item] : document_["paths"].items()) {
    for (const char* method : kMethods) {
      if (!item.contains(method)) continue;
      ++operations;
      std::string upper = absl::AsciiStrToUpper(method);
      EXPECT_TRUE(routes.count({upper, path})) << upper << " " << path << " is documented but "
                                               << "the router has no such route";
    }
  }
  EXPECT_EQ(operations, static_cast<int>(Routes().size()));
}

TEST_F(OpenApiTest, PathParametersAreDeclaredAsTheRouterNamesThem) {
  for (const auto& [path, item] : document_["paths"].items()) {
    std::vector<std::string> names = TemplateParameters(path);
    std::set<std::string> in_template(names.begin(), names.end());
    for (const char* method : kMethods) {
      if (!item.contains(method)) continue;
      EXPECT_EQ(DeclaredPathParameters(path, item[method]), in_template)
          << method << " " << path << " declares other path parameters than its template has";
    }
  }
}

// A request to each documented operation, made concrete and without credentials, reaches a route
// (401, or 400 for the public sign-in with no body) instead of 404 or 405.
TEST_F(OpenApiTest, EveryDocumentedOperationIsServed) {
  for (const auto& [path, item] : document_["paths"].items()) {
    std::string concrete = path;
    for (const std::string& name : TemplateParameters(path)) {
      size_t at = concrete.find("{" + name + "}");
      concrete.replace(at, name.size() + 2, "x1");
    }
    for (const char* method : kMethods) {
      if (!item.contains(method)) continue;
      HttpRequest request{absl::AsciiStrToUpper(method), concrete, {}, {}, "", "127.0.0.1"};
      int status = service_->router().Handle(request).status;
      EXPECT_TRUE(status != 404 && status != 405) << method << " " << concrete << " → " << status;
    }
  }
}

// The answers of a real service, made to do a little of everything, have the fields and types
// the document's response schemas give them.
class OpenApiAnswersTest : public OpenApiTest {
 protected:
  void SetUp() override {
    OpenApiTest::SetUp();
    if (HasFatalFailure()) return;
    auto app = app::App::Open(paths_, "", Clock::Real());
    ASSERT_TRUE(app.ok());
    auto token = (*app)->CreateToken("t", catalog::Role::kAdmin, std::nullopt, {"test", "", ""});
    ASSERT_TRUE(token.ok());
    admin_ = token->secret;
  }

  // Calls the route and checks the answer against the document's schema for its status.
  json Call(const std::string& method, const std::string& path, const std::string& body = "",
            int expected = 200) {
    std::pair<std::string, std::string> target = absl::StrSplit(path, absl::MaxSplits('?', 1));
    std::string pattern = PatternOf(method, target.first);
    HttpRequest request{method, target.first, {}, {{"authorization", "Bearer " + admin_}},
                        body,   "127.0.0.1"};
    for (absl::string_view pair : absl::StrSplit(target.second, '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> parameter = absl::StrSplit(pair, '=');
      request.query.insert(parameter);
    }
    HttpResponse response = service_->router().Handle(request);
    EXPECT_EQ(response.status, expected) << method << " " << path << ": " << response.body;
    json answer = json::parse(response.body, nullptr, false);
    const json* operation = Operation(method, pattern);
    if (operation == nullptr) {
      ADD_FAILURE() << method << " " << pattern << " is not documented";
      return answer;
    }
    const json& responses = (*operation)["responses"];
    std::string status = std::to_string(response.status);
    const json& documented =
        Resolve(document_, responses.contains(status) ? responses[status] : responses["default"]);
    const json& schema = documented["content"]["application/json"]["schema"];
    SchemaChecker checker(document_);
    std::vector<std::string> problems = checker.Problems(schema, answer);
    EXPECT_TRUE(problems.empty()) << method << " " << path << " → " << status << ":\n  "
                                  << absl::StrJoin(problems, "\n  ") << "\n"
                                  << answer.dump(2);
    return answer;
  }

  // The route pattern `path` matches (the document's key for it).
  std::string PatternOf(const std::string& method, const std::string& path) {
    for (const Route& route : Routes()) {
      if (route.method != method) continue;
      std::vector<std::string> a = absl::StrSplit(route.pattern, '/');
      std::vector<std::string> b = absl::StrSplit(path, '/');
      if (a.size() != b.size()) continue;
      bool same = true;
      for (size_t i = 0; i < a.size() && same; ++i) same = a[i] == b[i] || a[i].front() == '{';
      if (same) return route.pattern;
    }
    return path;
  }

  // Waits for the job in a 202 answer and checks it as GET /jobs/{job} shows it.
  json FinishedJob(const json& accepted) {
    std::string id = accepted["job"]["id"];
    auto done = service_->jobs().Wait(id, Millis(60'000));
    EXPECT_TRUE(done.ok());
    json job = Call("GET", "/api/v1/jobs/" + id);
    EXPECT_EQ(job["state"], "succeeded") << job.dump(2);
    return job;
  }

  std::string admin_;
};

TEST_F(OpenApiAnswersTest, AnswersHaveTheDocumentedFields) {
  std::string image = dir_.path() + "/vm1.qcow2";
  auto made = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", image, "8M"},
                         Deadline::In(Millis(30'000)));
  ASSERT_TRUE(made.ok() && made->status.success());
  json volume = {{"name", "root"}, {"path", image}, {"boot", true}};
  json vm = {{"name", "vm1"}, {"agent", false}, {"volumes", json::array({volume})}};
  Call("POST", "/api/v1/vms", vm.dump(), 201);
  Call("POST", "/api/v1/vms", vm.dump(), 409);
  Call("GET", "/api/v1/vms");
  Call("PUT", "/api/v1/vms/vm1/limit", R"({"limit_bytes": 1073741824})");
  Call("PUT", "/api/v1/schedules/vm1",
       R"({"at": ["02:30"], "weekdays": ["mon"], "retention": {"keep_last": 2}})");
  Call("GET", "/api/v1/schedules");
  json capture = Call("POST", "/api/v1/vms/vm1/snapshots", R"({"description": "first"})", 202);
  json point = FinishedJob(capture)["result"];
  Call("GET", "/api/v1/vms/vm1");
  Call("GET", "/api/v1/snapshots?vm=vm1");
  Call("GET", "/api/v1/snapshots/" + point["id"].get<std::string>());
  ::setenv("STILLPOINT_NBD_PLUGIN", SP_NBD_PLUGIN, 1);
  json mount = Call("POST", "/api/v1/snapshots/" + point["id"].get<std::string>() + "/mounts",
                    R"({"lifetime_s": 600})", 201);
  Call("GET", "/api/v1/mounts");
  Call("GET", "/api/v1/mounts/" + mount["id"].get<std::string>());
  Call("DELETE", "/api/v1/mounts/" + mount["id"].get<std::string>());
  FinishedJob(Call("POST", "/api/v1/repository/gc", "", 202));
  FinishedJob(Call("POST", "/api/v1/repository/verify", "", 202));
  Call("GET", "/api/v1/repository");
  Call("GET", "/api/v1/repository/stats");
  Call("GET", "/api/v1/jobs");
  Call("GET", "/api/v1/events");
  Call("GET", "/api/v1/session");
  Call("GET", "/api/v1/settings");
  Call("PUT", "/api/v1/settings/snapshots.enabled", R"({"value": "true"})");
  Call("POST", "/api/v1/users",
       R"({"name": "ops", "role": "operator", "password": "correct horse"})", 201);
  Call("GET", "/api/v1/users");
  json token = Call("POST", "/api/v1/tokens", R"({"name": "ci", "expires_in_days": 7})", 201);
  Call("GET", "/api/v1/tokens");
  Call("DELETE", "/api/v1/tokens/" + token["id"].get<std::string>());
  Call("GET", "/api/v1/vms/nosuch", "", 404);
  Call("POST", "/api/v1/tokens", R"({"name": 5})", 400);
}

}  // namespace
}  // namespace sp::server
