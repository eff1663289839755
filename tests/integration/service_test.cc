// stillpointd as a user runs it: `stillpoint serve` as its own process over HTTPS, a real VM under
// QEMU with the real guest agent, snapshots taken through the API and followed through the live
// event stream; a service killed mid-capture.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "platform/files.h"
#include "server/tls.h"
#include "tests/integration/guest.h"

namespace sp {
namespace {

using testing::GuestEnv;
using testing::GuestWorld;

constexpr Millis kBootTimeout{90'000};

// One `stillpoint serve` process on a free port of 127.0.0.1 over `world`'s state directory.
class ServiceProcess {
 public:
  explicit ServiceProcess(GuestWorld& world, std::map<std::string, std::string> env = {})
      : world_(world) {
    static int started = 0;
    log_ = absl::StrCat(world.dir(), "/service-", ++started, ".log");
    SpawnOptions options;
    options.stdout_path = log_;
    options.stderr_path = log_ + ".err";
    options.extra_env = {{"STILLPOINT_HOME", world.paths().home},
                         {"STILLPOINT_RUN_DIR", world.paths().run_root}};
    options.extra_env.insert(env.begin(), env.end());
    auto pid = Spawn({testing::StillpointBinary(), "serve", "--listen", "127.0.0.1:0"}, options);
    EXPECT_TRUE(pid.ok()) << pid.status();
    pid_ = pid.value_or(-1);
    Deadline deadline = Deadline::In(Millis(30'000));
    while (port_ == 0 && !deadline.Expired()) {
      ReadLog();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    EXPECT_NE(port_, 0) << "the service did not start: " << ReadFile(log_ + ".err").value_or("");
  }
  ~ServiceProcess() { Stop(SIGTERM); }

  // Stops the process with `signal` and waits for it.
  void Stop(int signal) {
    if (pid_ <= 0) return;
    (void)SendSignal(pid_, signal);
    (void)WaitChild(pid_, Deadline::In(Millis(60'000)));
    pid_ = -1;
  }

  std::unique_ptr<httplib::SSLClient> Client() {
    auto client = std::make_unique<httplib::SSLClient>("127.0.0.1", port_);
    client->set_ca_cert_path((world_.paths().home + "/server/cert.pem").c_str());
    client->enable_server_certificate_verification(true);
    client->set_read_timeout(60, 0);
    return client;
  }

  int port() const { return port_; }
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& admin_password() const { return admin_password_; }

 private:
  void ReadLog() {
    auto text = ReadFile(log_);
    if (!text.ok()) return;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      std::vector<std::string> words = absl::StrSplit(line, ' ');
      if (absl::StartsWith(line, "stillpointd: serving https://127.0.0.1:") && words.size() > 2) {
        std::string url = words[2];
        (void)absl::SimpleAtoi(url.substr(18, url.size() - 19), &port_);
      }
      if (absl::StartsWith(line, "stillpointd: TLS certificate SHA-256 "))
        fingerprint_ = words.back();
      if (absl::StartsWith(line, "stillpointd: created user 'admin' with password ")) {
        admin_password_ = words.back();
      }
    }
  }

  GuestWorld& world_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string fingerprint_, admin_password_;
};

class ServiceTest : public ::testing::Test {
 protected:
  // Polls the job until it has ended (or four minutes passed); returns it as last seen.
  nlohmann::json WaitForJob(httplib::SSLClient& client, const httplib::Headers& auth,
                            const std::string& id) {
    Deadline deadline = Deadline::In(Millis(240'000));
    nlohmann::json job;
    while (!deadline.Expired()) {
      auto polled = client.Get("/api/v1/jobs/" + id, auth);
      if (polled) job = nlohmann::json::parse(polled->body, nullptr, false);
      if (job.is_object() && job["state"] != "queued" && job["state"] != "running") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    return job;
  }

  void SetUp() override { ASSERT_FALSE(GuestEnv().empty()) << "test guest unavailable"; }

  // An operator token made by the admin through the API (signed in with the printed password).
  std::string OperatorToken(ServiceProcess& service) {
    auto client = service.Client();
    nlohmann::json sign_in = {{"user", "admin"}, {"password", service.admin_password()}};
    auto signed_in = client->Post("/api/v1/session", sign_in.dump(), "application/json");
    EXPECT_TRUE(signed_in) << httplib::to_string(signed_in.error());
    if (!signed_in) return "";
    EXPECT_EQ(signed_in->status, 200) << signed_in->body;
    std::string cookie = signed_in->get_header_value("Set-Cookie");
    cookie = cookie.substr(0, cookie.find(';'));
    std::string csrf = nlohmann::json::parse(signed_in->body)["csrf_token"];
    httplib::Headers headers = {{"Cookie", cookie}, {"X-CSRF-Token", csrf}};
    auto made = client->Post("/api/v1/tokens", headers,
                             R"({"name": "test", "role": "operator", "expires_in_days": 1})",
                             "application/json");
    EXPECT_TRUE(made && made->status == 201) << (made ? made->body : "no answer");
    return made ? nlohmann::json::parse(made->body)["secret"].get<std::string>() : "";
  }

  GuestWorld world_;
};

TEST_F(ServiceTest, SnapshotThroughTheApiFollowedLiveThroughTheEventStream) {
  auto vm = world_.BootGuest("web01", kBootTimeout);
  ASSERT_TRUE(vm.ok()) << vm.status();
  ServiceProcess service(world_);
  ASSERT_NE(service.port(), 0);
  // The fingerprint printed is the certificate's; clients pin it.
  auto pem = ReadFile(world_.paths().home + "/server/cert.pem");
  ASSERT_TRUE(pem.ok());
  EXPECT_EQ(server::CertificateFingerprint(*pem).value_or(""), service.fingerprint());
  std::string token = OperatorToken(service);
  ASSERT_FALSE(token.empty());
  httplib::Headers auth = {{"Authorization", "Bearer " + token}};

  // Follow the event stream from now on, in the background, until the job has ended.
  std::atomic<bool> done{false};
  std::string job_id;
  absl::Mutex mutex;
  std::vector<nlohmann::json> seen;
  std::thread follower([&] {
    auto client = service.Client();
    std::string buffer;
    client->Get("/api/v1/events/stream", auth, [&](const char* data, size_t size) {
      buffer.append(data, size);
      size_t end;
      while ((end = buffer.find("\n\n")) != std::string::npos) {
        std::string record = buffer.substr(0, end);
        buffer.erase(0, end + 2);
        size_t at = record.find("data: ");
        if (at == std::string::npos) continue;
        nlohmann::json event = nlohmann::json::parse(record.substr(at + 6), nullptr, false);
        absl::MutexLock lock(&mutex);
        seen.push_back(event);
        if (event.value("job", "") == job_id && !job_id.empty() &&
            (event["kind"] == "job.succeeded" || event["kind"] == "job.failed")) {
          done = true;
        }
      }
      return !done.load();
    });
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the stream is open

  auto client = service.Client();
  auto accepted = client->Post("/api/v1/vms/web01/snapshots", auth,
                               R"({"name": "through the API", "consistency": "require-app"})",
                               "application/json");
  ASSERT_TRUE(accepted);
  ASSERT_EQ(accepted->status, 202) << accepted->body;
  {
    absl::MutexLock lock(&mutex);
    job_id = nlohmann::json::parse(accepted->body)["job"]["id"];
  }
  Deadline deadline = Deadline::In(Millis(240'000));
  while (!done && !deadline.Expired()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(done) << "no job.succeeded/failed event for " << job_id;
  follower.join();
  {
    absl::MutexLock lock(&mutex);
    EXPECT_EQ(seen.back()["kind"], "job.succeeded") << seen.back().dump();
    bool started = false;
    for (const auto& event : seen) started |= event["kind"] == "job.running";
    EXPECT_TRUE(started);
  }
  auto job = client->Get("/api/v1/jobs/" + job_id, auth);
  ASSERT_TRUE(job && job->status == 200);
  nlohmann::json shown = nlohmann::json::parse(job->body);
  EXPECT_EQ(shown["state"], "succeeded");
  EXPECT_EQ(shown["result"]["consistency"], "application") << shown.dump();
  EXPECT_EQ(shown["progress"]["done"], shown["progress"]["total"]);

  // A new VM from the point, through the API, boots to a guest agent that answers.
  std::string point = shown["result"]["id"];
  auto created = client->Post("/api/v1/snapshots/" + point + "/create-vm", auth,
                              R"({"name": "web02"})", "application/json");
  ASSERT_TRUE(created && created->status == 202) << (created ? created->body : "no answer");
  nlohmann::json made =
      WaitForJob(*client, auth, nlohmann::json::parse(created->body)["job"]["id"]);
  ASSERT_EQ(made["state"], "succeeded") << made.dump();
  EXPECT_EQ(made["result"]["vm"]["name"], "web02");
  auto started = client->Post("/api/v1/vms/web02/start", auth, "{}", "application/json");
  ASSERT_TRUE(started && started->status == 200) << (started ? started->body : "no answer");
  auto web02 = world_.app().GetVm("web02");
  ASSERT_TRUE(web02.ok());
  EXPECT_TRUE(world_.WaitForAgent(*web02, kBootTimeout).ok());
  auto points = client->Get("/api/v1/snapshots?vm=web01&consistency=application", auth);
  ASSERT_TRUE(points && points->status == 200);
  EXPECT_EQ(nlohmann::json::parse(points->body)["recovery_points"][0]["id"], point);
  auto detail = client->Get("/api/v1/snapshots/" + point, auth);
  ASSERT_TRUE(detail && detail->status == 200);
  EXPECT_EQ(nlohmann::json::parse(detail->body)["consistency"], "application");

  // The CLI sees the same point while the service runs.
  auto listed = world_.Cli({"snapshot", "list", "web01", "--json"});
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(absl::StrContains(listed->output, shown["result"]["id"].get<std::string>()));

  auto metrics = client->Get("/metrics", auth);
  ASSERT_TRUE(metrics && metrics->status == 200);
  EXPECT_TRUE(absl::StrContains(
      metrics->body,
      "stillpoint_vm_last_point_timestamp_seconds{vm=\"web01\",consistency=\"application\"}"))
      << metrics->body;
  EXPECT_TRUE(absl::StrContains(metrics->body, "stillpoint_capture_frozen_window_seconds_count 1"));
  std::string metrics_file = world_.dir() + "/metrics.txt";
  ASSERT_TRUE(WriteFileAtomic(metrics_file, metrics->body).ok());
  // scripts/test.sh provides promtool (scripts/promtool.sh); run by hand, set it yourself.
  const char* promtool = std::getenv("STILLPOINT_PROMTOOL");
  if (promtool == nullptr) GTEST_SKIP() << "STILLPOINT_PROMTOOL not set: /metrics not linted";
  auto checked = RunCommand({"sh", "-c", absl::StrCat(promtool, " check metrics < ", metrics_file)},
                            Deadline::In(Millis(60'000)));
  ASSERT_TRUE(checked.ok());
  EXPECT_TRUE(checked->status.success()) << checked->output;
}

TEST_F(ServiceTest, AServiceKilledMidCaptureLeavesTheGuestThawedAndTheJobFailed) {
  auto vm = world_.BootGuest("web01", kBootTimeout);
  ASSERT_TRUE(vm.ok()) << vm.status();
  std::string token;
  std::string job_id;
  {
    // Each chunk takes a while, so the capture is mid-stream when the service dies.
    ServiceProcess service(world_, {{"STILLPOINT_FAULT_AT", "stream.chunk:delay=400"}});
    token = OperatorToken(service);
    auto client = service.Client();
    auto accepted = client->Post("/api/v1/vms/web01/snapshots",
                                 {{"Authorization", "Bearer " + token}}, "{}", "application/json");
    ASSERT_TRUE(accepted && accepted->status == 202);
    job_id = nlohmann::json::parse(accepted->body)["job"]["id"];
    Deadline deadline = Deadline::In(Millis(120'000));
    bool streaming = false;
    while (!streaming && !deadline.Expired()) {
      auto job = client->Get("/api/v1/jobs/" + job_id, {{"Authorization", "Bearer " + token}});
      streaming = job && nlohmann::json::parse(job->body)["progress"].value("done", 0) > 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(streaming);
    service.Stop(SIGKILL);
  }
  // The thaw guard (or the capture's own thaw) left the guest thawed.
  auto agent = world_.runtime().ConnectAgent(*vm);
  ASSERT_TRUE(agent.ok());
  ASSERT_TRUE((*agent)->Sync(Millis(5000)).ok());
  auto state = (*agent)->FreezeStatus(Millis(5000));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(*state, qga::FreezeState::kThawed);
  agent->reset();

  ServiceProcess again(world_);
  auto client = again.Client();
  auto job = client->Get("/api/v1/jobs/" + job_id, {{"Authorization", "Bearer " + token}});
  ASSERT_TRUE(job && job->status == 200);
  nlohmann::json shown = nlohmann::json::parse(job->body);
  EXPECT_EQ(shown["state"], "failed") << shown.dump();
  EXPECT_TRUE(absl::StrContains(shown["error"]["message"].get<std::string>(), "service stopped"));
  auto verify = world_.Cli({"repo", "verify"});
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->status.success()) << verify->output;
  // The VM can be captured again (no leftover lock or filter).
  auto next = client->Post("/api/v1/vms/web01/snapshots", {{"Authorization", "Bearer " + token}},
                           "{}", "application/json");
  ASSERT_TRUE(next && next->status == 202);
  std::string next_id = nlohmann::json::parse(next->body)["job"]["id"];
  Deadline deadline = Deadline::In(Millis(240'000));
  nlohmann::json finished;
  while (!deadline.Expired()) {
    auto polled = client->Get("/api/v1/jobs/" + next_id, {{"Authorization", "Bearer " + token}});
    finished = nlohmann::json::parse(polled->body);
    if (finished["state"] != "queued" && finished["state"] != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_EQ(finished["state"], "succeeded") << finished.dump();
}

// The CLI and the service work on the same state at once; the VM's capture lock lets one capture
// of a VM run at a time, whichever front end started it, and the other is refused cleanly.
TEST_F(ServiceTest, OneCaptureOfAVmAtATimeBetweenTheCliAndTheService) {
  auto vm = world_.BootGuest("web01", kBootTimeout);
  ASSERT_TRUE(vm.ok()) << vm.status();
  ServiceProcess service(world_, {{"STILLPOINT_FAULT_AT", "stream.chunk:delay=300"}});
  std::string token = OperatorToken(service);
  httplib::Headers auth = {{"Authorization", "Bearer " + token}};
  auto client = service.Client();

  // The service's capture is mid-stream: the CLI's capture of the same VM is refused.
  auto accepted = client->Post("/api/v1/vms/web01/snapshots", auth, "{}", "application/json");
  ASSERT_TRUE(accepted && accepted->status == 202);
  std::string job_id = nlohmann::json::parse(accepted->body)["job"]["id"];
  Deadline deadline = Deadline::In(Millis(120'000));
  bool streaming = false;
  while (!streaming && !deadline.Expired()) {
    auto job = client->Get("/api/v1/jobs/" + job_id, auth);
    streaming = job && nlohmann::json::parse(job->body)["progress"].value("done", 0) > 0;
    if (!streaming) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(streaming);
  auto refused = world_.Cli({"snapshot", "create", "web01"});
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->status.success());
  EXPECT_TRUE(absl::StrContains(refused->output, "another capture of VM 'web01' is running"))
      << refused->output;
  nlohmann::json finished = WaitForJob(*client, auth, job_id);
  EXPECT_EQ(finished["state"], "succeeded") << finished.dump();

  // The CLI's capture is mid-stream: the service's job fails with the same reason, and the
  // CLI's point is complete.
  std::atomic<bool> cli_done{false};
  StatusOr<CommandResult> cli_capture = CommandResult{};
  std::thread cli([&] {
    cli_capture = world_.Cli({"snapshot", "create", "web01", "--json"}, Millis(240'000),
                             {"STILLPOINT_FAULT_AT=stream.chunk:delay=300"});
    cli_done = true;
  });
  deadline = Deadline::In(Millis(120'000));
  bool cli_streaming = false;
  while (!cli_streaming && !cli_done && !deadline.Expired()) {
    auto points = client->Get("/api/v1/snapshots?vm=web01&state=in-progress", auth);
    cli_streaming = points && points->status == 200 &&
                    !nlohmann::json::parse(points->body)["recovery_points"].empty();
    if (!cli_streaming) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(cli_streaming);
  auto second = client->Post("/api/v1/vms/web01/snapshots", auth, "{}", "application/json");
  ASSERT_TRUE(second && second->status == 202);
  nlohmann::json second_job =
      WaitForJob(*client, auth, nlohmann::json::parse(second->body)["job"]["id"]);
  EXPECT_EQ(second_job["state"], "failed") << second_job.dump();
  EXPECT_TRUE(absl::StrContains(second_job.dump(), "another capture of VM 'web01' is running"))
      << second_job.dump();
  cli.join();
  ASSERT_TRUE(cli_capture.ok()) << cli_capture.status();
  EXPECT_TRUE(cli_capture->status.success()) << cli_capture->output;
  auto verify = world_.Cli({"repo", "verify"});
  ASSERT_TRUE(verify.ok());
  EXPECT_TRUE(verify->status.success()) << verify->output;
}

}  // namespace
}  // namespace sp
