// Who is calling: local users with roles, bearer tokens for scripts, sessions for the console.
//
// Users and tokens are app:: use cases (see app/credentials.h for how their secrets are kept);
// session ids are random like tokens and only their digests are held. Sessions live in the
// service's memory (a restart signs everyone out) and carry a CSRF token that cookie-authenticated
// writes must echo in X-CSRF-Token. Failed sign-ins are throttled per user and per address: after
// kFreeFailures failures the next attempt must wait, doubling up to kMaxLockout.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "catalog/auth_store.h"
#include "platform/clock.h"
#include "platform/status.h"
#include "server/app_pool.h"
#include "server/http.h"

namespace sp::server {

using catalog::Role;

enum class Via { kNone, kToken, kSession };

struct Principal {
  std::string user;  // the user, or for a token its creator
  Role role = Role::kViewer;
  Via via = Via::kNone;
  std::string session_digest;  // for a session
  std::string csrf_token;      // for a session
  std::string token_id;        // for a token
};

struct SignIn {
  std::string session;  // the cookie's value (secret)
  std::string csrf_token;
  std::string user;
  Role role = Role::kViewer;
  int64_t expires_us = 0;
};

inline constexpr const char* kSessionCookie = "sp_session";
inline constexpr int kFreeFailures = 5;
inline constexpr Millis kMaxLockout{15 * 60 * 1000};
inline constexpr Millis kSessionLifetime{12 * 3600 * 1000};

class Authenticator {
 public:
  Authenticator(AppPool* apps, Clock* clock) : apps_(apps), clock_(clock) {}

  // The caller of `request`: a bearer token (Authorization: Bearer ...) or a session cookie.
  // Unauthenticated with the reason (no credentials, unknown, expired or revoked token, ended
  // session).
  StatusOr<Principal> Authenticate(const HttpRequest& request);

  // Checks `user`'s password. Unauthenticated ("wrong user or password", the same for both) on a
  // mismatch; ResourceExhausted with the seconds to wait while throttled, whether or not the
  // password is right.
  StatusOr<SignIn> Login(const std::string& user, const std::string& password,
                         const std::string& address);
  void Logout(const std::string& session_digest);
  // Ends every session of `user` (after a password change or removal).
  void EndSessionsOf(const std::string& user);

 private:
  struct Session {
    std::string user;
    Role role;
    std::string csrf_token;
    int64_t expires_us;
  };
  struct Failures {
    int count = 0;
    int64_t locked_until_us = 0;
  };
  Status CheckThrottle(const std::string& key, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void RecordFailure(const std::string& key, int64_t now_us) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  StatusOr<Principal> FromToken(const std::string& secret);
  StatusOr<Principal> FromSession(const std::string& secret);

  AppPool* const apps_;  // not owned
  Clock* const clock_;   // not owned
  absl::Mutex mutex_;
  std::map<std::string, Session> sessions_ ABSL_GUARDED_BY(mutex_);   // by digest
  std::map<std::string, Failures> failures_ ABSL_GUARDED_BY(mutex_);  // "user:NAME", "addr:IP"
};

}  // namespace sp::server
