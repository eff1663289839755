#include "server/service.h"

#include <httplib.h>

#include <atomic>
#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "app/credentials.h"
#include "platform/files.h"
#include "server/metrics.h"
#include "server/mounts.h"
#include "server/scheduler.h"

namespace sp::server {
namespace {

constexpr size_t kHttpThreads = 16;
constexpr char kInitialPasswordFile[] = "initial-admin-password";

HttpRequest FromHttplib(const httplib::Request& in) {
  HttpRequest out;
  out.method = in.method;
  out.path = in.path;
  for (const auto& [key, value] : in.params) out.query.emplace(key, value);
  for (const auto& [key, value] : in.headers) out.headers[absl::AsciiStrToLower(key)] = value;
  out.body = in.body;
  out.remote_address = in.remote_addr;
  return out;
}

// The headers every answer carries: nothing is cached, nothing is sniffed, HTTPS only.
void AddSafetyHeaders(httplib::Response& out) {
  out.set_header("Cache-Control", "no-store");
  out.set_header("X-Content-Type-Options", "nosniff");
  out.set_header("X-Frame-Options", "DENY");
  out.set_header("Referrer-Policy", "no-referrer");
  out.set_header("Strict-Transport-Security", "max-age=31536000");
}

void ToHttplib(HttpResponse response, httplib::Response& out, std::atomic<bool>* stopping) {
  out.status = response.status;
  AddSafetyHeaders(out);
  for (const auto& [key, value] : response.headers) out.set_header(key, value);
  if (!response.stream) {
    out.set_content(response.body, response.content_type);
    return;
  }
  BodyStream stream = std::move(response.stream);
  out.set_chunked_content_provider(response.content_type,
                                   [stream, stopping](size_t, httplib::DataSink& sink) {
                                     std::string piece;
                                     bool more = !stopping->load() && stream(&piece);
                                     if (!piece.empty() && !sink.write(piece.data(), piece.size()))
                                       return false;
                                     if (!more) sink.done();
                                     return true;
                                   });
}

std::string NewPassword() { return app::NewSecret("").substr(0, 24); }

}  // namespace

// Set while the service stops: streams end, so that the HTTP threads can be joined.
static std::atomic<bool> g_stopping{false};

Service::Service(ServiceOptions options) : options_(std::move(options)) {}

Service::~Service() { Stop(); }

StatusOr<std::unique_ptr<Service>> Service::Create(ServiceOptions options) {
  std::unique_ptr<Service> service(new Service(std::move(options)));
  const ServerConfig& config = service->options_.config;
  std::string server_dir = service->options_.paths.home + "/server";
  SP_ASSIGN_OR_RETURN(service->tls_,
                      LoadOrCreateTlsIdentity(config.tls_certificate, config.tls_key, server_dir));
  std::string program = service->options_.program;
  service->apps_ =
      std::make_unique<AppPool>(service->options_.paths, program, service->options_.clock);
  SP_ASSIGN_OR_RETURN(service->catalog_, catalog::Catalog::Open(service->options_.paths.catalog,
                                                                service->options_.clock));
  service->job_store_ =
      std::make_unique<catalog::JobStore>(service->catalog_->db(), service->options_.clock);
  service->jobs_ = std::make_unique<JobManager>(service->job_store_.get(), service->options_.clock,
                                                config.concurrent_jobs, config.concurrent_captures);
  service->auth_ = std::make_unique<Authenticator>(service->apps_.get(), service->options_.clock);
  service->metrics_ = std::make_unique<Metrics>(service->apps_.get(), service->jobs_.get());
  service->mounts_ = std::make_unique<MountManager>(service->apps_.get(), service->options_.clock);
  service->scheduler_ = std::make_unique<Scheduler>(service->apps_.get(), service->jobs_.get(),
                                                    service->options_.clock);
  SP_RETURN_IF_ERROR(service->EnsureAdmin());
  Service* self = service.get();
  service->jobs_->SetListener([self](const JobRecord& job) { self->OnJobChanged(job); });
  SP_ASSIGN_OR_RETURN(auto orphans, service->jobs_->RecoverAfterRestart());
  for (const JobRecord& job : orphans) self->OnJobChanged(job);
  ApiContext& api = service->api_;
  api.apps = service->apps_.get();
  api.jobs = service->jobs_.get();
  api.auth = service->auth_.get();
  api.scheduler = service->scheduler_.get();
  api.metrics = service->metrics_.get();
  api.mounts = service->mounts_.get();
  api.config = &service->options_.config;
  api.clock = service->options_.clock;
  api.openapi = OpenApiDocument();
  service->router_ = std::make_unique<Router>(service->auth_.get());
  AddApiRoutes(service->router_.get(), &api);
  service->router_->SetAudit([self](const HttpRequest& request, const Principal& who, int status) {
    auto app = self->apps_->Acquire();
    if (!app.ok()) return;
    (void)(*app)->RecordEvent("", "api.change",
                              absl::StrCat(request.method, " ", request.path, " → ", status),
                              {who.user, request.remote_address, ""});
  });
  return service;
}

Status Service::EnsureAdmin() {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps_->Acquire());
  SP_ASSIGN_OR_RETURN(auto users, app->ListUsers());
  std::string file = options_.paths.home + "/server/" + kInitialPasswordFile;
  if (!users.empty()) {
    // The first password stays on disk only until someone changes it.
    for (const auto& user : users) {
      if (user.name == "admin" && user.password_changed_us != user.created_us) {
        (void)RemoveTree(file);
      }
    }
    return absl::OkStatus();
  }
  initial_admin_password_ = NewPassword();
  SP_RETURN_IF_ERROR(
      app->AddUser("admin", catalog::Role::kAdmin, initial_admin_password_, {"stillpointd", "", ""})
          .status());
  return WriteFileAtomic(file, initial_admin_password_ + "\n", 0600);
}

void Service::OnJobChanged(const JobRecord& job) {
  auto app = apps_->Acquire();
  if (!app.ok()) return;
  std::string message = absl::StrCat(job.kind, " ", catalog::JobStateName(job.state));
  if (!job.error.empty()) absl::StrAppend(&message, ": ", job.error);
  Status recorded =
      (*app)->RecordEvent(job.vm, absl::StrCat("job.", catalog::JobStateName(job.state)), message,
                          {job.requested_by, "", job.id});
  if (!recorded.ok() && !job.vm.empty()) {  // the VM went away: record it system-wide
    (void)(*app)->RecordEvent("", absl::StrCat("job.", catalog::JobStateName(job.state)), message,
                              {job.requested_by, "", job.id});
  }
  if (metrics_) metrics_->JobChanged(job);
}

Status Service::Start() {
  const ServerConfig& config = options_.config;
  http_ =
      std::make_unique<httplib::SSLServer>(tls_.certificate_path.c_str(), tls_.key_path.c_str());
  if (!http_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat("TLS pair ", tls_.certificate_path, " / ",
                                                   tls_.key_path, " could not be loaded"));
  }
  http_->new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  http_->set_payload_max_length(config.max_body_bytes);
  http_->set_read_timeout(30, 0);
  http_->set_write_timeout(30, 0);
  http_->set_keep_alive_timeout(10);
  // A response leaves in several TLS records; with Nagle's algorithm each one after the first
  // waits for the client's delayed ACK, about 40 ms per request.
  http_->set_tcp_nodelay(true);
  Router* router = router_.get();
  auto handle = [router](const httplib::Request& in, httplib::Response& out) {
    ToHttplib(router->Handle(FromHttplib(in)), out, &g_stopping);
  };
  http_->Get(".*", handle);
  http_->Post(".*", handle);
  http_->Put(".*", handle);
  http_->Patch(".*", handle);
  http_->Delete(".*", handle);
  http_->set_error_handler([](const httplib::Request&, httplib::Response& out) {
    if (!out.body.empty()) return;
    HttpResponse error =
        HttpResponse::Error(out.status, "http_error", absl::StrCat("HTTP ", out.status));
    ToHttplib(error, out, &g_stopping);
  });
  if (config.listen.port == 0) {
    port_ = http_->bind_to_any_port(config.listen.host);
  } else if (http_->bind_to_port(config.listen.host, config.listen.port)) {
    port_ = config.listen.port;
  }
  if (port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", config.listen.host, ":",
                                               config.listen.port,
                                               " (in use, or not an address of this host)"));
  }
  g_stopping = false;
  serve_thread_ = std::thread([this] { http_->listen_after_bind(); });
  if (options_.run_scheduler) scheduler_->Start();
  return absl::OkStatus();
}

void Service::Stop() {
  if (stopped_) return;
  stopped_ = true;
  g_stopping = true;
  if (scheduler_) scheduler_->Stop();
  if (http_) http_->stop();
  if (serve_thread_.joinable()) serve_thread_.join();
  jobs_.reset();    // cancels what runs and joins the workers
  mounts_.reset();  // stops every NBD server
}

}  // namespace sp::server
