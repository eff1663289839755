// The service's request handling without a network: a real Service (catalog, repository and TLS
// pair in a temporary state directory) whose router is called directly.
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "platform/files.h"
#include "platform/process.h"
#include "server/config.h"
#include "server/fields.h"
#include "server/mounts.h"
#include "server/scheduler.h"
#include "server/service.h"
#include "testing/temp_dir.h"

namespace sp::server {
namespace {

// A clock tests move by hand.
class FakeClock : public Clock {
 public:
  SteadyTime Now() const override { return SteadyTime(std::chrono::microseconds(micros_.load())); }
  int64_t UnixMicros() const override { return micros_; }
  void Advance(Millis by) { micros_ += by.count() * 1000; }

 private:
  std::atomic<int64_t> micros_{1'800'000'000'000'000};
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    app::StatePaths paths;
    paths.home = dir_.path();
    paths.catalog = dir_.path() + "/catalog.db";
    paths.repo = dir_.path() + "/repo";
    paths.run_root = dir_.path() + "/run";
    ::setenv("STILLPOINT_HOME", dir_.path().c_str(), 1);
    service_paths_ = paths;
    ServiceOptions options;
    options.paths = paths;
    options.clock = &clock_;
    options.run_scheduler = false;
    auto service = Service::Create(options);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(service).value();
    auto app = app::App::Open(paths, "", &clock_);
    ASSERT_TRUE(app.ok());
    app_ = std::move(app).value();
    viewer_ = Token(catalog::Role::kViewer);
    operator_ = Token(catalog::Role::kOperator);
    admin_ = Token(catalog::Role::kAdmin);
  }

  std::string Token(catalog::Role role, std::optional<Millis> lifetime = std::nullopt) {
    auto token = app_->CreateToken("test", role, lifetime, {"test", "", ""});
    EXPECT_TRUE(token.ok()) << token.status();
    return token.ok() ? token->secret : "";
  }

  HttpResponse Call(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "") {
    HttpRequest request;
    request.method = method;
    request.path = path;
    if (!token.empty()) request.headers["authorization"] = "Bearer " + token;
    request.body = body;
    request.remote_address = "127.0.0.1";
    return service_->router().Handle(request);
  }

  nlohmann::json Json(const HttpResponse& response) {
    return nlohmann::json::parse(response.body, nullptr, false);
  }

  // The route's pattern with its parameters filled in.
  static std::string Concrete(const std::string& pattern) {
    std::string out = pattern;
    for (const char* name :
         {"{vm}", "{job}", "{user}", "{token}", "{key}", "{schedule}", "{id}", "{mount}"}) {
      size_t at = out.find(name);
      if (at != std::string::npos) out.replace(at, std::string(name).size(), "nosuch");
    }
    return out;
  }

  testing::TempDir dir_;
  app::StatePaths service_paths_;
  FakeClock clock_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<app::App> app_;
  std::string viewer_, operator_, admin_;
};

TEST_F(ServerTest, EveryRouteRefusesCallersWithoutCredentials) {
  for (const Route& route : service_->router().routes()) {
    if (route.public_route) continue;
    HttpResponse response = Call(route.method, Concrete(route.pattern), "");
    EXPECT_EQ(response.status, 401) << route.method << " " << route.pattern;
    EXPECT_EQ(Json(response)["error"]["code"], "unauthenticated");
  }
}

TEST_F(ServerTest, TooWeakARoleIsRefusedBeforeAnythingIsLookedUp) {
  int checked = 0;
  for (const Route& route : service_->router().routes()) {
    if (route.public_route || route.role == catalog::Role::kViewer) continue;
    const std::string& weaker = route.role == catalog::Role::kAdmin ? operator_ : viewer_;
    HttpResponse response = Call(route.method, Concrete(route.pattern), weaker, "{}");
    EXPECT_EQ(response.status, 403) << route.method << " " << route.pattern;
    ++checked;
  }
  EXPECT_GT(checked, 10);
}

TEST_F(ServerTest, ExpiredAndRevokedTokensAreRefused) {
  std::string short_lived = Token(catalog::Role::kAdmin, Millis(60'000));
  EXPECT_EQ(Call("GET", "/api/v1/vms", short_lived).status, 200);
  clock_.Advance(Millis(61'000));
  HttpResponse expired = Call("GET", "/api/v1/vms", short_lived);
  EXPECT_EQ(expired.status, 401);
  EXPECT_TRUE(absl::StrContains(expired.body, "expired"));

  auto tokens = app_->ListTokens();  // oldest first: the viewer token of SetUp
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(Call("GET", "/api/v1/vms", viewer_).status, 200);
  HttpResponse revoked = Call("DELETE", "/api/v1/tokens/" + tokens->front().id, admin_);
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(Call("GET", "/api/v1/vms", viewer_).status, 401);
  EXPECT_EQ(Call("GET", "/api/v1/vms", "spt_forged").status, 401);
}

TEST_F(ServerTest, SignInGivesASessionWhoseWritesNeedTheCsrfToken) {
  ASSERT_TRUE(app_->AddUser("alice", catalog::Role::kOperator, "correct horse battery", {}).ok());
  HttpResponse signed_in =
      Call("POST", "/api/v1/session", "", R"({"user":"alice","password":"correct horse battery"})");
  ASSERT_EQ(signed_in.status, 200) << signed_in.body;
  std::string set_cookie;
  for (const auto& [name, value] : signed_in.headers) {
    if (name == "Set-Cookie") set_cookie = value;
  }
  std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  ASSERT_TRUE(absl::StartsWith(cookie, "sp_session="));
  for (const char* flag : {"HttpOnly", "Secure", "SameSite=Strict"}) {
    EXPECT_TRUE(absl::StrContains(set_cookie, flag)) << flag;
  }
  std::string csrf = Json(signed_in)["csrf_token"];

  HttpRequest request;
  request.method = "PUT";
  request.path = "/api/v1/schedules/nosuch";
  request.headers["cookie"] = cookie;
  request.body = R"({"every_minutes": 60})";
  HttpResponse without = service_->router().Handle(request);
  EXPECT_EQ(without.status, 403);
  EXPECT_EQ(Json(without)["error"]["code"], "csrf");
  request.headers["x-csrf-token"] = csrf;
  HttpResponse with = service_->router().Handle(request);
  EXPECT_EQ(with.status, 404) << with.body;  // past the checks: no VM 'nosuch'

  request.method = "GET";
  request.path = "/api/v1/session";
  request.headers.erase("x-csrf-token");
  EXPECT_EQ(Json(service_->router().Handle(request))["user"], "alice");
}

TEST_F(ServerTest, RepeatedWrongPasswordsAreThrottled) {
  ASSERT_TRUE(app_->AddUser("bob", catalog::Role::kViewer, "a long enough secret", {}).ok());
  std::string wrong = R"({"user":"bob","password":"guess"})";
  for (int i = 0; i < kFreeFailures; ++i) {
    EXPECT_EQ(Call("POST", "/api/v1/session", "", wrong).status, 401);
  }
  HttpResponse throttled =
      Call("POST", "/api/v1/session", "", R"({"user":"bob","password":"a long enough secret"})");
  EXPECT_EQ(throttled.status, 429) << throttled.body;
  clock_.Advance(Millis(2'000));
  EXPECT_EQ(
      Call("POST", "/api/v1/session", "", R"({"user":"bob","password":"a long enough secret"})")
          .status,
      200);
}

TEST_F(ServerTest, BadInputGetsAFourHundredNamingTheField) {
  struct Case {
    std::string method, path, body, field;
  };
  std::vector<Case> cases = {
      {"POST", "/api/v1/tokens", R"({"name": 5})", "name"},
      {"POST", "/api/v1/tokens", R"({"name": "x", "colour": "red"})", "colour"},
      {"POST", "/api/v1/tokens", R"({"name": "x", "expires_in_days": "7"})", "expires_in_days"},
      {"POST", "/api/v1/users", R"({"name": "x", "password": "p", "role": "root"})", "role"},
      {"POST", "/api/v1/repository/prune", R"({"vm": "x"})", "keep_last"},
      {"GET", "/api/v1/events?limit=-3", "", "limit"},
  };
  for (const Case& c : cases) {
    std::string path = c.path, query;
    HttpRequest request;
    request.method = c.method;
    request.path = path.substr(0, path.find('?'));
    if (path.find('?') != std::string::npos) request.query["limit"] = "-3";
    request.headers["authorization"] = "Bearer " + admin_;
    request.body = c.body;
    HttpResponse response = service_->router().Handle(request);
    EXPECT_EQ(response.status, 400) << c.path << " " << c.body << " → " << response.body;
    EXPECT_EQ(Json(response)["error"]["field"], c.field) << response.body;
  }
  EXPECT_EQ(Call("POST", "/api/v1/tokens", admin_, "{not json").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/tokens", admin_, "[1,2]").status, 400);
  EXPECT_EQ(Call("POST", "/api/v1/tokens", admin_, std::string(100000, '[')).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/vms/..", admin_).status, 400);
  EXPECT_EQ(Call("GET", std::string("/api/v1/vms/a\0b", 16), admin_).status, 400);
  EXPECT_EQ(Call("GET", "/api/v1/nothing", admin_).status, 404);
  HttpResponse wrong_method = Call("PATCH", "/api/v1/vms", admin_);
  EXPECT_EQ(wrong_method.status, 405);
}

TEST_F(ServerTest, ChangesAreAuditedWithWhoAndWhere) {
  ASSERT_EQ(
      Call("PUT", "/api/v1/settings/snapshots.enabled", admin_, R"({"value":"false"})").status,
      200);
  EXPECT_EQ(
      Call("PUT", "/api/v1/settings/snapshots.enabled", viewer_, R"({"value":"true"})").status,
      403);
  catalog::EventFilter filter;
  filter.kind_prefix = "api.";
  auto events = app_->QueryEvents(filter);
  ASSERT_TRUE(events.ok());
  ASSERT_GE(events->size(), 2u);
  EXPECT_TRUE(absl::StrContains((*events)[0].message, "→ 403"));
  EXPECT_TRUE(absl::StrContains((*events)[1].message, "→ 200"));
  EXPECT_EQ((*events)[1].address, "127.0.0.1");
  EXPECT_FALSE((*events)[1].actor.empty());
}

TEST_F(ServerTest, TheFirstStartCreatesAnAdminWhosePasswordWorks) {
  ASSERT_FALSE(service_->initial_admin_password().empty());
  std::string body =
      nlohmann::json{{"user", "admin"}, {"password", service_->initial_admin_password()}}.dump();
  EXPECT_EQ(Call("POST", "/api/v1/session", "", body).status, 200);
}

TEST_F(ServerTest, JobsRunAndReportTheirOutcome) {
  HttpResponse accepted = Call("POST", "/api/v1/repository/gc", operator_);
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  std::string id = Json(accepted)["job"]["id"];
  auto done = service_->jobs().Wait(id, Millis(30'000));
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(catalog::JobStateName(done->state), std::string("succeeded")) << done->error;
  nlohmann::json shown = Json(Call("GET", "/api/v1/jobs/" + id, viewer_));
  EXPECT_EQ(shown["state"], "succeeded");
  EXPECT_TRUE(shown["result"].contains("chunks_in_use"));
  HttpResponse cancel = Call("POST", "/api/v1/jobs/" + id + "/cancel", operator_);
  EXPECT_EQ(cancel.status, 409);
}

// Schedules on the service's clock, with real captures of a stopped VM's images (qemu-img and
// qemu-nbd, no guest).
class ScheduleRunTest : public ServerTest {
 protected:
  void DefineStoppedVm() {
    std::string image = dir_.path() + "/vm1.qcow2";
    auto made = RunCommand({"qemu-img", "create", "-q", "-f", "qcow2", image, "8M"},
                           Deadline::In(Millis(30'000)));
    ASSERT_TRUE(made.ok() && made->status.success());
    catalog::VmRecord draft;
    draft.name = "vm1";
    draft.agent = false;
    draft.volumes.push_back({"root", image, "qcow2", true, "", "", -1});
    ASSERT_TRUE(app_->DefineVm(draft).ok());
  }

  // One scheduler pass; waits for the jobs it started. Returns how many it started.
  size_t TickAndWait() {
    auto jobs = scheduler().Tick();
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    if (!jobs.ok()) return 0;
    for (const JobRecord& job : *jobs) {
      auto done = service_->jobs().Wait(job.id, Millis(60'000));
      EXPECT_TRUE(done.ok());
      EXPECT_EQ(catalog::JobStateName(done->state), std::string("succeeded")) << done->error;
    }
    return jobs->size();
  }

  size_t Points() {
    auto points = app_->ListSnapshots("vm1");
    return points.ok() ? points->size() : 0;
  }

  Scheduler& scheduler() { return service_->scheduler(); }
};

TEST_F(ScheduleRunTest, IntervalRunsApplyRetentionNeverOverlapAndCatchUpOnce) {
  DefineStoppedVm();
  HttpResponse set = Call("PUT", "/api/v1/schedules/vm1", operator_,
                          R"({"every_minutes": 60, "retention": {"keep_last": 2}})");
  ASSERT_EQ(set.status, 200) << set.body;
  EXPECT_EQ(TickAndWait(), 0u);
  for (int hour = 1; hour <= 3; ++hour) {
    clock_.Advance(Millis(3'600'000));
    EXPECT_EQ(TickAndWait(), 1u) << "hour " << hour;
    EXPECT_EQ(TickAndWait(), 0u) << "hour " << hour;
  }
  EXPECT_EQ(Points(), 2u);  // keep_last 2 after the third run

  // No overlap: while a run of the schedule is unfinished, a due slot does not start another.
  absl::Notification release;
  JobRequest blocker{"snapshot.create",
                     "vm1",
                     "schedule:vm1",
                     {},
                     false,
                     [&release](JobContext&) -> StatusOr<nlohmann::json> {
                       release.WaitForNotification();
                       return nlohmann::json::object();
                     }};
  auto running = service_->jobs().Submit(std::move(blocker));
  ASSERT_TRUE(running.ok());
  clock_.Advance(Millis(3'600'000));
  auto while_running = scheduler().Tick();
  ASSERT_TRUE(while_running.ok());
  EXPECT_TRUE(while_running->empty());
  release.Notify();
  ASSERT_TRUE(service_->jobs().Wait(running->id, Millis(60'000)).ok());
  EXPECT_EQ(TickAndWait(), 1u);  // the slot that passed meanwhile runs once
  EXPECT_EQ(TickAndWait(), 0u);

  // Down for five hours: one run at the next start, not five.
  service_.reset();
  clock_.Advance(Millis(5 * 3'600'000));
  ServiceOptions options;
  options.paths = service_paths_;
  options.clock = &clock_;
  options.run_scheduler = false;
  auto restarted = Service::Create(options);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  service_ = std::move(restarted).value();
  EXPECT_EQ(TickAndWait(), 1u);
  EXPECT_EQ(TickAndWait(), 0u);
}

// A mount through the API serves the point's volume over NBD, byte for byte, until it is stopped
// or its time is up.
TEST_F(ScheduleRunTest, AMountServesThePointUntilStoppedOrExpired) {
  ::setenv("STILLPOINT_NBD_PLUGIN", SP_NBD_PLUGIN, 1);
  DefineStoppedVm();
  std::string image = dir_.path() + "/vm1.qcow2";
  auto written = RunCommand({"qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 1M 2M", image},
                            Deadline::In(Millis(30'000)));
  ASSERT_TRUE(written.ok() && written->status.success());
  HttpResponse accepted = Call("POST", "/api/v1/vms/vm1/snapshots", operator_, "{}");
  ASSERT_EQ(accepted.status, 202) << accepted.body;
  auto captured = service_->jobs().Wait(Json(accepted)["job"]["id"], Millis(60'000));
  ASSERT_TRUE(captured.ok());
  std::string point = nlohmann::json::parse(captured->result_json)["id"];

  EXPECT_EQ(Call("POST", "/api/v1/snapshots/" + point + "/mounts", viewer_, "{}").status, 403);
  EXPECT_EQ(Call("POST", "/api/v1/snapshots/nosuch/mounts", operator_, "{}").status, 404);
  EXPECT_EQ(
      Call("POST", "/api/v1/snapshots/" + point + "/mounts", operator_, R"({"lifetime_s": 5})")
          .status,
      400);
  HttpResponse opened = Call("POST", "/api/v1/snapshots/" + point + "/mounts", operator_,
                             R"({"volume": "root", "lifetime_s": 600})");
  ASSERT_EQ(opened.status, 201) << opened.body;
  nlohmann::json mount = Json(opened);
  EXPECT_EQ(mount["point_id"], point);
  EXPECT_EQ(mount["size_bytes"], 8u << 20);
  auto compared = RunCommand(
      {"qemu-img", "compare", "-f", "qcow2", "-F", "raw", image, mount["uri"].get<std::string>()},
      Deadline::In(Millis(60'000)));
  ASSERT_TRUE(compared.ok());
  EXPECT_TRUE(compared->status.success()) << compared->output;
  nlohmann::json listed = Json(Call("GET", "/api/v1/mounts", viewer_));
  ASSERT_EQ(listed["mounts"].size(), 1u);
  EXPECT_EQ(Json(Call("GET", "/api/v1/mounts/" + mount["id"].get<std::string>(), viewer_))["uri"],
            mount["uri"]);
  EXPECT_EQ(Call("DELETE", "/api/v1/mounts/" + mount["id"].get<std::string>(), viewer_).status,
            403);
  EXPECT_EQ(Call("DELETE", "/api/v1/mounts/" + mount["id"].get<std::string>(), operator_).status,
            200);
  EXPECT_FALSE(PathExists(mount["socket"]));
  EXPECT_EQ(Call("GET", "/api/v1/mounts/" + mount["id"].get<std::string>(), viewer_).status, 404);

  // A mount whose time is up is stopped.
  HttpResponse brief =
      Call("POST", "/api/v1/snapshots/" + point + "/mounts", operator_, R"({"lifetime_s": 60})");
  ASSERT_EQ(brief.status, 201) << brief.body;
  std::string socket = Json(brief)["socket"];
  EXPECT_TRUE(PathExists(socket));
  clock_.Advance(Millis(61'000));
  service_->mounts().ExpireDue();
  EXPECT_TRUE(Json(Call("GET", "/api/v1/mounts", viewer_))["mounts"].empty());
  EXPECT_FALSE(PathExists(socket));
}

TEST(ServerConfigTest, ErrorsNameTheLine) {
  auto good =
      ParseServerConfig("[server]\nlisten = \"0.0.0.0:9443\"\n[jobs]\nconcurrent = 3\n", "f");
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->listen.host, "0.0.0.0");
  EXPECT_EQ(good->listen.port, 9443);
  EXPECT_EQ(good->concurrent_jobs, 3);
  auto typo = ParseServerConfig("[server]\n\nlisten_on = \"x\"\n", "f.toml");
  ASSERT_FALSE(typo.ok());
  EXPECT_TRUE(absl::StrContains(typo.status().message(), "f.toml:3:")) << typo.status();
  auto broken = ParseServerConfig("[server\n", "f.toml");
  EXPECT_TRUE(absl::StrContains(broken.status().message(), "f.toml:1:")) << broken.status();
  EXPECT_FALSE(ParseServerConfig("[server]\nlisten = \"x:99999\"\n", "f").ok());
  EXPECT_FALSE(ParseServerConfig("[jobs]\nconcurrent = \"2\"\n", "f").ok());
  EXPECT_FALSE(ParseServerConfig("[server]\ntls_key = \"k\"\n", "f").ok());
}

}  // namespace
}  // namespace sp::server
