// /api/v1/users, /tokens, /settings (admin) and /repository (info and stats for viewers;
// verify, gc and prune as jobs for operators).
#include "absl/strings/numbers.h"
#include "app/app.h"
#include "server/api.h"
#include "server/fields.h"

namespace sp::server {
namespace {

nlohmann::json UserJson(const catalog::UserRecord& user) {
  return {{"name", user.name},
          {"role", catalog::RoleName(user.role)},
          {"created", FormatUnixMicros(user.created_us)},
          {"password_changed", FormatUnixMicros(user.password_changed_us)}};
}

nlohmann::json TokenJson(const catalog::TokenRecord& token) {
  auto time = [](const std::optional<int64_t>& us) {
    return us ? nlohmann::json(FormatUnixMicros(*us)) : nlohmann::json(nullptr);
  };
  return {{"id", token.id},
          {"name", token.name},
          {"role", catalog::RoleName(token.role)},
          {"created_by", token.created_by},
          {"created", FormatUnixMicros(token.created_us)},
          {"expires", time(token.expires_us)},
          {"revoked", time(token.revoked_us)},
          {"last_used", time(token.last_used_us)}};
}

// Runs `work` with an App and answers with its JSON.
// The default repository is made on first use, as for the CLI's commands.
Status EnsureRepository(app::App* app) { return app->Repo().status(); }

HttpResponse AddUser(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto name = fields.String("name", true, 64);
  auto role = fields.Choice("role", {"viewer", "operator", "admin"});
  auto password = fields.String("password", true, 1024);
  for (const Status& status :
       {name.status(), role.status(), password.status(), fields.NoOthers()}) {
    if (!status.ok()) return ErrorResponse(status);
  }
  return api::WithApp(
      api,
      [&](app::App* app) -> StatusOr<nlohmann::json> {
        SP_ASSIGN_OR_RETURN(catalog::Role parsed, catalog::ParseRole(role->value_or("viewer")));
        SP_ASSIGN_OR_RETURN(catalog::UserRecord user,
                            app->AddUser(**name, parsed, **password, api::Origin(c)));
        return UserJson(user);
      },
      201);
}

HttpResponse CreateToken(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto name = fields.String("name", true, 128);
  auto role = fields.Choice("role", {"viewer", "operator", "admin"});
  auto days = fields.Int("expires_in_days", 1, 3650);
  for (const Status& status : {name.status(), role.status(), days.status(), fields.NoOthers()}) {
    if (!status.ok()) return ErrorResponse(status);
  }
  return api::WithApp(
      api,
      [&](app::App* app) -> StatusOr<nlohmann::json> {
        SP_ASSIGN_OR_RETURN(catalog::Role parsed, catalog::ParseRole(role->value_or("viewer")));
        std::optional<Millis> lifetime;
        if (*days) lifetime = Millis(**days * 24 * 3600 * 1000);
        SP_ASSIGN_OR_RETURN(app::NewToken token,
                            app->CreateToken(**name, parsed, lifetime, api::Origin(c)));
        nlohmann::json out = TokenJson(token.record);
        out["secret"] = token.secret;
        return out;
      },
      201);
}

HttpResponse SetSetting(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto value = fields.String("value", true, 256);
  for (const Status& status : {value.status(), fields.NoOthers()}) {
    if (!status.ok()) return ErrorResponse(status);
  }
  return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
    const std::string& key = c.params.at("key");
    SP_RETURN_IF_ERROR(app->SetSetting(key, **value));
    (void)app->RecordEvent("", "config.set-by", absl::StrCat(key, " = ", **value), api::Origin(c));
    return nlohmann::json{{"key", key}, {"value", **value}};
  });
}

StatusOr<repo::PrunePolicy> ReadPrunePolicy(BodyFields& fields) {
  repo::PrunePolicy policy;
  std::pair<const char*, int*> rules[] = {
      {"keep_last", &policy.keep_last},       {"keep_hourly", &policy.keep_hourly},
      {"keep_daily", &policy.keep_daily},     {"keep_weekly", &policy.keep_weekly},
      {"keep_monthly", &policy.keep_monthly}, {"keep_yearly", &policy.keep_yearly}};
  for (auto& [key, target] : rules) {
    SP_ASSIGN_OR_RETURN(auto value, fields.Int(key, 0, 100000));
    *target = static_cast<int>(value.value_or(0));
  }
  return policy;
}

// A repository job: the default repository is made first if this is its first use.
HttpResponse RepoJob(ApiContext* api, const RouteContext& c, const std::string& kind,
                     api::AppWork work, const std::string& vm = "") {
  return api::AppJob(api, c, kind, vm, [work = std::move(work)](app::App* app) {
    Status made = EnsureRepository(app);
    return made.ok() ? work(app) : StatusOr<nlohmann::json>(made);
  });
}

HttpResponse Prune(ApiContext* api, RouteContext& c) {
  BodyFields fields(c.body);
  auto vm = fields.String("vm", true, 128);
  auto dry_run = fields.Bool("dry_run");
  auto policy = ReadPrunePolicy(fields);
  for (const Status& status : {vm.status(), dry_run.status(), policy.status(), fields.NoOthers()}) {
    if (!status.ok()) return ErrorResponse(status);
  }
  if (policy->Empty()) {
    return ErrorResponse(FieldError("keep_last", "give at least one keep_* rule above 0"));
  }
  std::string name = **vm;
  bool dry = dry_run->value_or(false);
  repo::PrunePolicy rules = *policy;
  return RepoJob(
      api, c, "repo.prune",
      [name, dry, rules](app::App* app) -> StatusOr<nlohmann::json> {
        SP_ASSIGN_OR_RETURN(auto decisions, app->Prune({}, name, rules, dry));
        return app::PruneJson(decisions, dry);
      },
      name);
}

void AddUserRoutes(Router* router, ApiContext* api) {
  const std::string users = std::string(kApiPrefix) + "/users";
  router->Add({"GET", users, Role::kAdmin, "List users", [api](RouteContext&) {
                 return api::WithApp(api, [](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(auto list, app->ListUsers());
                   nlohmann::json out = nlohmann::json::array();
                   for (const auto& user : list) out.push_back(UserJson(user));
                   return nlohmann::json{{"users", out}};
                 });
               }});
  router->Add({"POST", users, Role::kAdmin, "Add a user",
               [api](RouteContext& c) { return AddUser(api, c); }});
  router->Add({"DELETE", users + "/{user}", Role::kAdmin, "Remove a user", [api](RouteContext& c) {
                 return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_RETURN_IF_ERROR(app->RemoveUser(c.params.at("user"), api::Origin(c)));
                   api->auth->EndSessionsOf(c.params.at("user"));
                   return nlohmann::json{{"removed", c.params.at("user")}};
                 });
               }});
  router->Add({"PUT", users + "/{user}/password", Role::kAdmin, "Set a user's password",
               [api](RouteContext& c) {
                 BodyFields fields(c.body);
                 auto password = fields.String("password", true, 1024);
                 for (const Status& s : {password.status(), fields.NoOthers()}) {
                   if (!s.ok()) return ErrorResponse(s);
                 }
                 return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_RETURN_IF_ERROR(
                       app->SetPassword(c.params.at("user"), **password, api::Origin(c)));
                   api->auth->EndSessionsOf(c.params.at("user"));
                   return nlohmann::json{{"user", c.params.at("user")}, {"password_changed", true}};
                 });
               }});
}

void AddTokenRoutes(Router* router, ApiContext* api) {
  const std::string tokens = std::string(kApiPrefix) + "/tokens";
  router->Add(
      {"GET", tokens, Role::kAdmin, "List API tokens (never their secrets)", [api](RouteContext&) {
         return api::WithApp(api, [](app::App* app) -> StatusOr<nlohmann::json> {
           SP_ASSIGN_OR_RETURN(auto list, app->ListTokens());
           nlohmann::json out = nlohmann::json::array();
           for (const auto& token : list) out.push_back(TokenJson(token));
           return nlohmann::json{{"tokens", out}};
         });
       }});
  router->Add({"POST", tokens, Role::kAdmin, "Create an API token (its secret is shown once)",
               [api](RouteContext& c) { return CreateToken(api, c); }});
  router->Add(
      {"DELETE", tokens + "/{token}", Role::kAdmin, "Revoke an API token", [api](RouteContext& c) {
         return api::WithApp(api, [&](app::App* app) -> StatusOr<nlohmann::json> {
           SP_RETURN_IF_ERROR(app->RevokeToken(c.params.at("token"), api::Origin(c)));
           return nlohmann::json{{"revoked", c.params.at("token")}};
         });
       }});
}

void AddSettingRoutes(Router* router, ApiContext* api) {
  const std::string settings = std::string(kApiPrefix) + "/settings";
  router->Add({"GET", settings, Role::kViewer, "System-wide settings", [api](RouteContext&) {
                 return api::WithApp(api, [](app::App* app) -> StatusOr<nlohmann::json> {
                   nlohmann::json out = nlohmann::json::object();
                   for (const auto& [key, fallback] : app::App::SettingDefaults()) {
                     SP_ASSIGN_OR_RETURN(out[key], app->GetSetting(key));
                   }
                   return nlohmann::json{{"settings", out}};
                 });
               }});
  router->Add({"PUT", settings + "/{key}", Role::kAdmin, "Change a setting",
               [api](RouteContext& c) { return SetSetting(api, c); }});
}

void AddRepositoryRoutes(Router* router, ApiContext* api) {
  const std::string repo = std::string(kApiPrefix) + "/repository";
  router->Add({"GET", repo, Role::kViewer, "The repository's configuration", [api](RouteContext&) {
                 return api::WithApp(api, [](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_RETURN_IF_ERROR(EnsureRepository(app));
                   SP_ASSIGN_OR_RETURN(app::RepoInfo info, app::App::GetRepoInfo({}));
                   return app::RepoInfoJson(info);
                 });
               }});
  router->Add({"GET", repo + "/stats", Role::kViewer, "Logical and stored bytes, dedup ratio",
               [api](RouteContext&) {
                 return api::WithApp(api, [](app::App* app) -> StatusOr<nlohmann::json> {
                   SP_RETURN_IF_ERROR(EnsureRepository(app));
                   SP_ASSIGN_OR_RETURN(repo::RepositoryStats stats, app::App::GetRepoStats({}));
                   return app::RepoStatsJson(stats);
                 });
               }});
  router->Add({"POST", repo + "/verify", Role::kOperator, "Re-read every chunk (a job)",
               [api](RouteContext& c) {
                 BodyFields fields(c.body);
                 auto point = fields.String("recovery_point", false, 128);
                 for (const Status& s : {point.status(), fields.NoOthers()}) {
                   if (!s.ok()) return ErrorResponse(s);
                 }
                 std::string id = point->value_or("");
                 return RepoJob(api, c, "repo.verify", [id](app::App*) -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(repo::VerifyReport report, app::App::VerifyRepo({}, id));
                   SP_RETURN_IF_ERROR(app::App::VerifyVerdict(report));
                   return app::VerifyJson(report);
                 });
               }});
  router->Add({"POST", repo + "/gc", Role::kOperator, "Delete chunks no point uses (a job)",
               [api](RouteContext& c) {
                 Status none = BodyFields(c.body).NoOthers();
                 if (!none.ok()) return ErrorResponse(none);
                 return RepoJob(api, c, "repo.gc", [](app::App*) -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(repo::GcReport report, app::App::CollectGarbage({}));
                   return app::GcJson(report);
                 });
               }});
  router->Add({"POST", repo + "/prune", Role::kOperator,
               "Remove a VM's recovery points by keep rules (a job)",
               [api](RouteContext& c) { return Prune(api, c); }});
}

}  // namespace

void AddAdminRoutes(Router* router, ApiContext* api) {
  AddUserRoutes(router, api);
  AddTokenRoutes(router, api);
  AddSettingRoutes(router, api);
  AddRepositoryRoutes(router, api);
}

}  // namespace sp::server
