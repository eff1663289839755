// Users and API tokens of the service; events.
#include "absl/strings/ascii.h"
#include "app/app.h"
#include "app/credentials.h"
#include "platform/environment.h"

namespace sp::app {
namespace {

Status CheckUserName(const std::string& name) {
  bool good = !name.empty() && name.size() <= 64;
  for (char c : name) {
    good = good && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ||
                    c == '.' || c == '@');
  }
  if (good) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("user name '", name, "' must be 1 to 64 letters, digits or '-', '_', '.', '@'"));
}

}  // namespace

catalog::EventOrigin LocalOrigin() {
  std::optional<std::string> user = GetEnv("SUDO_USER");
  if (!user) user = GetEnv("USER");
  return {absl::StrCat("cli:", user.value_or("unknown")), "", ""};
}

StatusOr<catalog::UserRecord> App::AddUser(const std::string& name, catalog::Role role,
                                           const std::string& password,
                                           const catalog::EventOrigin& origin) {
  SP_RETURN_IF_ERROR(CheckUserName(name));
  SP_RETURN_IF_ERROR(CheckPasswordStrength(password));
  catalog::AuthStore store(catalog_->db(), catalog_->clock());
  catalog::UserRecord user;
  user.name = name;
  user.role = role;
  SP_ASSIGN_OR_RETURN(user.password_hash, HashPassword(password));
  SP_RETURN_IF_ERROR(store.AddUser(user));
  (void)catalog_->AddEvent(nullptr, "user.added",
                           absl::StrCat("user '", name, "' added as ", catalog::RoleName(role)),
                           origin);
  return store.FindUser(name);
}

StatusOr<std::vector<catalog::UserRecord>> App::ListUsers() {
  return catalog::AuthStore(catalog_->db(), catalog_->clock()).ListUsers();
}

Status App::RemoveUser(const std::string& name, const catalog::EventOrigin& origin) {
  catalog::AuthStore store(catalog_->db(), catalog_->clock());
  SP_ASSIGN_OR_RETURN(auto transaction, catalog::Transaction::Begin(catalog_->db()));
  SP_ASSIGN_OR_RETURN(catalog::UserRecord user, store.FindUser(name));
  SP_ASSIGN_OR_RETURN(int64_t admins, store.CountUsers(catalog::Role::kAdmin));
  if (user.role == catalog::Role::kAdmin && admins <= 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", name, "' is the last admin; add another admin first"));
  }
  SP_RETURN_IF_ERROR(store.RemoveUser(name));
  SP_RETURN_IF_ERROR(transaction->Commit());
  (void)catalog_->AddEvent(nullptr, "user.removed", absl::StrCat("user '", name, "' removed"),
                           origin);
  return absl::OkStatus();
}

Status App::SetPassword(const std::string& name, const std::string& password,
                        const catalog::EventOrigin& origin) {
  SP_RETURN_IF_ERROR(CheckPasswordStrength(password));
  SP_ASSIGN_OR_RETURN(std::string hash, HashPassword(password));
  catalog::AuthStore store(catalog_->db(), catalog_->clock());
  SP_RETURN_IF_ERROR(store.SetPasswordHash(name, hash));
  (void)catalog_->AddEvent(nullptr, "user.password-changed",
                           absl::StrCat("password of user '", name, "' changed"), origin);
  return absl::OkStatus();
}

StatusOr<catalog::UserRecord> App::CheckPassword(const std::string& name,
                                                 const std::string& password) {
  catalog::AuthStore store(catalog_->db(), catalog_->clock());
  auto user = store.FindUser(name);
  if (!user.ok() && !absl::IsNotFound(user.status())) return user.status();
  // An unknown user costs the same hash as a known one, so timing does not tell them apart.
  static const std::string* const kDecoy = new std::string(HashPassword("decoy").value_or(""));
  bool good = VerifyPassword(password, user.ok() ? user->password_hash : *kDecoy);
  if (!good || !user.ok()) return absl::UnauthenticatedError("wrong user or password");
  return user;
}

StatusOr<NewToken> App::CreateToken(const std::string& name, catalog::Role role,
                                    std::optional<Millis> lifetime,
                                    const catalog::EventOrigin& origin) {
  if (name.empty() || name.size() > 128) {
    return absl::InvalidArgumentError("a token's name must be 1 to 128 characters");
  }
  NewToken token;
  token.secret = NewSecret("spt_");
  token.record.id = "tok_" + SecretDigest(token.secret).substr(0, 12);
  token.record.name = name;
  token.record.digest = SecretDigest(token.secret);
  token.record.role = role;
  token.record.created_by = origin.actor.empty() ? "local" : origin.actor;
  if (lifetime) {
    token.record.expires_us =
        catalog_->clock()->UnixMicros() +
        std::chrono::duration_cast<std::chrono::microseconds>(*lifetime).count();
  }
  catalog::AuthStore store(catalog_->db(), catalog_->clock());
  SP_RETURN_IF_ERROR(store.AddToken(token.record));
  (void)catalog_->AddEvent(
      nullptr, "token.created",
      absl::StrCat("token ", token.record.id, " '", name, "' created as ", catalog::RoleName(role)),
      origin);
  SP_ASSIGN_OR_RETURN(token.record, store.FindTokenByDigest(token.record.digest));
  return token;
}

StatusOr<std::vector<catalog::TokenRecord>> App::ListTokens() {
  return catalog::AuthStore(catalog_->db(), catalog_->clock()).ListTokens();
}

Status App::RevokeToken(const std::string& id, const catalog::EventOrigin& origin) {
  SP_RETURN_IF_ERROR(catalog::AuthStore(catalog_->db(), catalog_->clock()).RevokeToken(id));
  (void)catalog_->AddEvent(nullptr, "token.revoked", absl::StrCat("token ", id, " revoked"),
                           origin);
  return absl::OkStatus();
}

StatusOr<catalog::TokenRecord> App::FindToken(const std::string& secret) {
  if (secret.size() > 256) return absl::UnauthenticatedError("unknown token");
  catalog::AuthStore store(catalog_->db(), catalog_->clock());
  auto token = store.FindTokenByDigest(SecretDigest(secret));
  if (absl::IsNotFound(token.status())) return absl::UnauthenticatedError("unknown token");
  SP_RETURN_IF_ERROR(token.status());
  if (token->revoked_us) return absl::UnauthenticatedError("the token was revoked");
  if (token->expires_us && *token->expires_us <= catalog_->clock()->UnixMicros()) {
    return absl::UnauthenticatedError("the token has expired");
  }
  (void)store.TouchToken(token->id);  // bookkeeping only
  return token;
}

StatusOr<std::vector<catalog::EventRecord>> App::QueryEvents(const catalog::EventFilter& filter) {
  return catalog_->QueryEvents(filter);
}

Status App::RecordEvent(const std::string& vm, const std::string& kind, const std::string& message,
                        const catalog::EventOrigin& origin) {
  if (vm.empty()) return catalog_->AddEvent(nullptr, kind, message, origin);
  SP_ASSIGN_OR_RETURN(catalog::VmRecord record, catalog_->FindVm(vm));
  return catalog_->AddEvent(&record, kind, message, origin);
}

}  // namespace sp::app
