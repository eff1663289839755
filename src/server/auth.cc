#include "server/auth.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "app/credentials.h"

namespace sp::server {
namespace {

Status Unauthenticated(absl::string_view why) { return absl::UnauthenticatedError(why); }

std::string BearerOf(const HttpRequest& request) {
  std::string header = request.Header("authorization");
  constexpr absl::string_view kBearer = "Bearer ";
  if (header.size() <= kBearer.size() || !absl::StartsWithIgnoreCase(header, kBearer)) return "";
  return header.substr(kBearer.size());
}

}  // namespace

StatusOr<Principal> Authenticator::Authenticate(const HttpRequest& request) {
  std::string bearer = BearerOf(request);
  if (!bearer.empty()) return FromToken(bearer);
  std::string session = request.Cookie(kSessionCookie);
  if (!session.empty()) return FromSession(session);
  return Unauthenticated("sign in, or send a token as 'Authorization: Bearer TOKEN'");
}

StatusOr<Principal> Authenticator::FromToken(const std::string& secret) {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps_->Acquire());
  SP_ASSIGN_OR_RETURN(catalog::TokenRecord token, app->FindToken(secret));
  Principal principal;
  principal.user = token.created_by;
  principal.role = token.role;
  principal.via = Via::kToken;
  principal.token_id = token.id;
  return principal;
}

StatusOr<Principal> Authenticator::FromSession(const std::string& secret) {
  std::string digest = app::SecretDigest(secret);
  absl::MutexLock lock(&mutex_);
  auto it = sessions_.find(digest);
  if (it == sessions_.end()) return Unauthenticated("the session has ended; sign in again");
  if (it->second.expires_us <= clock_->UnixMicros()) {
    sessions_.erase(it);
    return Unauthenticated("the session has expired; sign in again");
  }
  Principal principal;
  principal.user = it->second.user;
  principal.role = it->second.role;
  principal.via = Via::kSession;
  principal.session_digest = digest;
  principal.csrf_token = it->second.csrf_token;
  return principal;
}

Status Authenticator::CheckThrottle(const std::string& key, int64_t now_us) {
  auto it = failures_.find(key);
  if (it == failures_.end() || it->second.locked_until_us <= now_us) return absl::OkStatus();
  int64_t wait_s = (it->second.locked_until_us - now_us + 999'999) / 1'000'000;
  return absl::ResourceExhaustedError(
      absl::StrCat("too many failed sign-ins; try again in ", wait_s, " s"));
}

void Authenticator::RecordFailure(const std::string& key, int64_t now_us) {
  Failures& failures = failures_[key];
  ++failures.count;
  if (failures.count < kFreeFailures) return;
  int64_t lockout_ms = std::min<int64_t>(
      int64_t{1000} << std::min(failures.count - kFreeFailures, 20), kMaxLockout.count());
  failures.locked_until_us = now_us + lockout_ms * 1000;
}

StatusOr<SignIn> Authenticator::Login(const std::string& user, const std::string& password,
                                      const std::string& address) {
  const std::string user_key = "user:" + user, address_key = "addr:" + address;
  {
    absl::MutexLock lock(&mutex_);
    int64_t now = clock_->UnixMicros();
    SP_RETURN_IF_ERROR(CheckThrottle(user_key, now));
    SP_RETURN_IF_ERROR(CheckThrottle(address_key, now));
  }
  StatusOr<catalog::UserRecord> record = absl::UnavailableError("no catalog");
  {
    SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps_->Acquire());
    record = app->CheckPassword(user, password);
  }
  if (!record.ok() && !absl::IsUnauthenticated(record.status())) return record.status();
  bool good = record.ok();
  absl::MutexLock lock(&mutex_);
  int64_t now = clock_->UnixMicros();
  if (!good) {
    RecordFailure(user_key, now);
    RecordFailure(address_key, now);
    return Unauthenticated("wrong user or password");
  }
  failures_.erase(user_key);
  failures_.erase(address_key);
  SignIn sign_in{
      app::NewSecret("sps_"), app::NewSecret(""), record->name, record->role,
      now + std::chrono::duration_cast<std::chrono::microseconds>(kSessionLifetime).count()};
  sessions_[app::SecretDigest(sign_in.session)] =
      Session{sign_in.user, sign_in.role, sign_in.csrf_token, sign_in.expires_us};
  return sign_in;
}

void Authenticator::Logout(const std::string& session_digest) {
  absl::MutexLock lock(&mutex_);
  sessions_.erase(session_digest);
}

void Authenticator::EndSessionsOf(const std::string& user) {
  absl::MutexLock lock(&mutex_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    it = it->second.user == user ? sessions_.erase(it) : std::next(it);
  }
}

}  // namespace sp::server
