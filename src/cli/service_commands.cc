// `stillpoint serve` (the service, stillpointd), `stillpoint user|token` (who may use it) and
// `stillpoint schedule` (protection schedules the service runs).
#include "cli/service_commands.h"

#include <malloc.h>
#include <signal.h>
#include <systemd/sd-daemon.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/service.h"

namespace sp::cli {
namespace {

std::atomic<int> g_signal{0};

void OnSignal(int number) { g_signal = number; }

// --- serve ------------------------------------------------------------------------------------

struct ServeArgs {
  std::string listen;
  std::string config;
  bool check_config = false;
};

Status Serve(const ServeArgs& args) {
  SP_ASSIGN_OR_RETURN(server::ServerConfig config, server::LoadServerConfig(args.config));
  if (!args.listen.empty()) {
    SP_ASSIGN_OR_RETURN(config.listen, server::ParseListenAddress(args.listen));
  }
  if (args.check_config) {
    std::cout << (config.source.empty() ? std::string("defaults") : config.source)
              << ": configuration is valid; the service would listen on " << config.listen.host
              << ":" << config.listen.port << "\n";
    return absl::OkStatus();
  }
  // Before any thread starts (see platform/environment.h).
  if (!config.state_dir.empty()) {
    ::setenv("STILLPOINT_HOME", config.state_dir.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  }
  SP_ASSIGN_OR_RETURN(app::StatePaths paths, app::ResolveStatePaths());
  // Chunk buffers (MiB each) come from mmap and go back to the system when freed: with glibc's
  // sliding threshold they stay in per-thread arenas instead, and a long-running service's memory
  // grows with every capture it runs (measured: 69 → 205 MiB over 24 captures; 48 MiB with this).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);  // NOLINT(concurrency-mt-unsafe): before any thread
  server::ServiceOptions options;
  options.config = config;
  options.paths = paths;
  SP_ASSIGN_OR_RETURN(auto service, server::Service::Create(std::move(options)));
  struct sigaction action {};
  action.sa_handler = OnSignal;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  SP_RETURN_IF_ERROR(service->Start());
  std::string url = absl::StrCat("https://", config.listen.host, ":", service->port(), "/");
  std::cout << "stillpointd: serving " << url << " (state " << paths.home << ")\n"
            << "stillpointd: TLS certificate SHA-256 " << service->tls().fingerprint << "\n";
  if (!service->initial_admin_password().empty()) {
    std::cout << "stillpointd: created user 'admin' with password "
              << service->initial_admin_password() << "\n"
              << "stillpointd: (kept in " << paths.home
              << "/server/initial-admin-password until changed; change it with "
                 "`stillpoint user passwd admin`)\n";
  }
  std::cout << std::flush;
  ::sd_notifyf(0, "READY=1\nSTATUS=serving %s", url.c_str());
  while (g_signal == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ::sd_notify(0, "STOPPING=1");
  std::cout << "stillpointd: stopping (signal " << g_signal << ")\n" << std::flush;
  service->Stop();
  return absl::OkStatus();
}

void AddServe(CLI::App& root, Context& context) {
  auto args = std::make_shared<ServeArgs>();
  CLI::App* serve = root.add_subcommand("serve", "Run the service: REST API, jobs, schedules");
  serve->add_option("--listen", args->listen, "HOST:PORT (default 127.0.0.1:8443)");
  serve->add_option("--config", args->config,
                    std::string("configuration file (default ") + server::kDefaultConfigPath +
                        " when it exists)");
  serve->add_flag("--check-config", args->check_config,
                  "only read the configuration, say whether it is valid, and exit");
  serve->callback([args, &context] { context.action = [args]() { return Serve(*args); }; });
}

// --- user -------------------------------------------------------------------------------------

// A password from `file`, else from stdin: prompted twice without echo on a terminal, else one
// line.
StatusOr<std::string> ReadPassword(const std::string& file) {
  if (!file.empty()) {
    SP_ASSIGN_OR_RETURN(std::string text, ReadFile(file));
    return std::string(absl::StripTrailingAsciiWhitespace(text));
  }
  if (!::isatty(STDIN_FILENO)) {
    std::string line;
    std::getline(std::cin, line);
    return line;
  }
  termios saved{};
  ::tcgetattr(STDIN_FILENO, &saved);
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  ::tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  std::string first, second;
  std::cerr << "password: " << std::flush;
  std::getline(std::cin, first);
  std::cerr << "\nagain: " << std::flush;
  std::getline(std::cin, second);
  std::cerr << "\n";
  ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (first != second) return absl::InvalidArgumentError("the passwords differ");
  return first;
}

nlohmann::json UserJson(const catalog::UserRecord& user) {
  return {{"name", user.name},
          {"role", catalog::RoleName(user.role)},
          {"created", FormatUnixMicros(user.created_us)}};
}

void AddUser(CLI::App& root, Context& context) {
  CLI::App* user = root.add_subcommand("user", "Users of the service and their roles");
  user->require_subcommand(1);
  struct Args {
    std::string name, role = "viewer", password_file;
  };
  auto args = std::make_shared<Args>();
  CLI::App* add =
      user->add_subcommand("add", "Add a user (password from --password-file or stdin)");
  add->add_option("name", args->name, "user name")->required();
  add->add_option("--role", args->role, "viewer, operator or admin")->capture_default_str();
  add->add_option("--password-file", args->password_file, "read the password from this file");
  add->add_flag("--json", context.json, "print JSON");
  add->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(catalog::Role role, catalog::ParseRole(args->role));
      SP_ASSIGN_OR_RETURN(std::string password, ReadPassword(args->password_file));
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto added, app->AddUser(args->name, role, password, app::LocalOrigin()));
      if (context.json)
        PrintJson(UserJson(added));
      else
        std::cout << "added user '" << added.name << "' (" << catalog::RoleName(role) << ")\n";
      return absl::OkStatus();
    };
  });
  CLI::App* list = user->add_subcommand("list", "List users");
  list->add_flag("--json", context.json, "print JSON");
  list->callback([&context] {
    context.action = [&context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto users, app->ListUsers());
      nlohmann::json out = nlohmann::json::array();
      Table table({"USER", "ROLE", "CREATED"});
      for (const auto& one : users) {
        out.push_back(UserJson(one));
        table.AddRow({one.name, catalog::RoleName(one.role), FormatUnixMicros(one.created_us)});
      }
      if (context.json)
        PrintJson(out);
      else
        std::cout << table.Render();
      return absl::OkStatus();
    };
  });
  auto name = std::make_shared<std::string>();
  CLI::App* remove = user->add_subcommand("remove", "Remove a user");
  remove->add_option("name", *name, "user name")->required();
  remove->callback([name, &context] {
    context.action = [name, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_RETURN_IF_ERROR(app->RemoveUser(*name, app::LocalOrigin()));
      std::cout << "removed user '" << *name << "'\n";
      return absl::OkStatus();
    };
  });
  auto passwd = std::make_shared<Args>();
  CLI::App* change = user->add_subcommand("passwd", "Set a user's password");
  change->add_option("name", passwd->name, "user name")->required();
  change->add_option("--password-file", passwd->password_file, "read the password from this file");
  change->callback([passwd, &context] {
    context.action = [passwd, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(std::string password, ReadPassword(passwd->password_file));
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_RETURN_IF_ERROR(app->SetPassword(passwd->name, password, app::LocalOrigin()));
      std::cout << "password of '" << passwd->name
                << "' changed (a running service signs its "
                   "sessions out within its session lifetime)\n";
      return absl::OkStatus();
    };
  });
}

// --- token ------------------------------------------------------------------------------------

StatusOr<std::optional<Millis>> ParseLifetime(const std::string& text) {
  if (text.empty() || text == "never") return std::optional<Millis>();
  int64_t count = 0;
  char unit = text.back();
  if (!absl::SimpleAtoi(text.substr(0, text.size() - 1), &count) || count <= 0 ||
      (unit != 'd' && unit != 'h')) {
    return absl::InvalidArgumentError(
        absl::StrCat("--expires '", text, "': give e.g. 30d, 12h or never"));
  }
  return std::optional<Millis>(Millis(count * (unit == 'd' ? 24 : 1) * 3600 * 1000));
}

void AddToken(CLI::App& root, Context& context) {
  CLI::App* token = root.add_subcommand("token", "API tokens for scripts");
  token->require_subcommand(1);
  struct Args {
    std::string name, role = "viewer", expires = "90d";
  };
  auto args = std::make_shared<Args>();
  CLI::App* create = token->add_subcommand("create", "Create a token (its secret is shown once)");
  create->add_option("name", args->name, "what the token is for")->required();
  create->add_option("--role", args->role, "viewer, operator or admin")->capture_default_str();
  create->add_option("--expires", args->expires, "lifetime: 30d, 12h or never")
      ->capture_default_str();
  create->add_flag("--json", context.json, "print JSON");
  create->callback([args, &context] {
    context.action = [args, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(catalog::Role role, catalog::ParseRole(args->role));
      SP_ASSIGN_OR_RETURN(auto lifetime, ParseLifetime(args->expires));
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(app::NewToken made,
                          app->CreateToken(args->name, role, lifetime, app::LocalOrigin()));
      if (context.json) {
        PrintJson({{"id", made.record.id},
                   {"secret", made.secret},
                   {"role", catalog::RoleName(role)},
                   {"expires", made.record.expires_us
                                   ? nlohmann::json(FormatUnixMicros(*made.record.expires_us))
                                   : nlohmann::json(nullptr)}});
      } else {
        std::cout << made.secret << "\n";
        std::cerr << "token " << made.record.id << " (" << catalog::RoleName(role)
                  << "): keep the secret above; it is not shown again\n";
      }
      return absl::OkStatus();
    };
  });
  CLI::App* list = token->add_subcommand("list", "List tokens (never their secrets)");
  list->add_flag("--json", context.json, "print JSON");
  list->callback([&context] {
    context.action = [&context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_ASSIGN_OR_RETURN(auto tokens, app->ListTokens());
      nlohmann::json out = nlohmann::json::array();
      Table table({"ID", "NAME", "ROLE", "EXPIRES", "STATE"});
      for (const auto& one : tokens) {
        std::string expires = one.expires_us ? FormatUnixMicros(*one.expires_us) : "never";
        std::string state = one.revoked_us ? "revoked" : "active";
        out.push_back({{"id", one.id},
                       {"name", one.name},
                       {"role", catalog::RoleName(one.role)},
                       {"expires", expires},
                       {"state", state}});
        table.AddRow({one.id, one.name, catalog::RoleName(one.role), expires, state});
      }
      if (context.json)
        PrintJson(out);
      else
        std::cout << table.Render();
      return absl::OkStatus();
    };
  });
  auto id = std::make_shared<std::string>();
  CLI::App* revoke = token->add_subcommand("revoke", "Revoke a token");
  revoke->add_option("id", *id, "token id (tok_...)")->required();
  revoke->callback([id, &context] {
    context.action = [id, &context]() -> Status {
      SP_ASSIGN_OR_RETURN(app::App * app, context.App());
      SP_RETURN_IF_ERROR(app->RevokeToken(*id, app::LocalOrigin()));
      std::cout << "revoked " << *id << "\n";
      return absl::OkStatus();
    };
  });
}

}  // namespace

void RegisterServiceCommands(CLI::App& root, Context& context) {
  AddServe(root, context);
  AddUser(root, context);
  AddToken(root, context);
  RegisterScheduleCommands(root, context);
}

}  // namespace sp::cli
