// Users and API tokens of the service, in the catalog. Holds only password hashes and digests of
// tokens: nothing here lets anyone sign in without the secret the user or script keeps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "platform/clock.h"
#include "platform/status.h"

namespace sp::catalog {

// Ordered: a role may do everything the roles before it may.
enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };

const char* RoleName(Role role);
// InvalidArgument naming the roles for anything but "viewer", "operator", "admin".
StatusOr<Role> ParseRole(const std::string& text);

struct UserRecord {
  std::string name;
  Role role = Role::kViewer;
  std::string password_hash;  // Argon2id, PHC string form
  int64_t created_us = 0;
  int64_t password_changed_us = 0;
};

struct TokenRecord {
  std::string id;      // short public id ("tok_1a2b3c4d"), shown in lists and used to revoke
  std::string name;    // what it is for
  std::string digest;  // hex SHA-256 of the secret
  Role role = Role::kViewer;
  std::string created_by;
  int64_t created_us = 0;
  std::optional<int64_t> expires_us;  // none: never
  std::optional<int64_t> revoked_us;
  std::optional<int64_t> last_used_us;
};

class AuthStore {
 public:
  // `db` must have the catalog's schema (see MigrateSchema). Not owned.
  AuthStore(Database* db, Clock* clock) : db_(db), clock_(clock) {}

  // AlreadyExists when the name is taken.
  Status AddUser(const UserRecord& user);
  StatusOr<UserRecord> FindUser(const std::string& name);  // NotFound
  StatusOr<std::vector<UserRecord>> ListUsers();
  Status RemoveUser(const std::string& name);                                // NotFound
  Status SetPasswordHash(const std::string& name, const std::string& hash);  // NotFound
  // How many users have `role` (the last admin may not be removed).
  StatusOr<int64_t> CountUsers(std::optional<Role> role);

  Status AddToken(const TokenRecord& token);
  StatusOr<TokenRecord> FindTokenByDigest(const std::string& digest);  // NotFound
  StatusOr<std::vector<TokenRecord>> ListTokens();
  Status RevokeToken(const std::string& id);  // NotFound; revoking twice is fine
  Status TouchToken(const std::string& id);   // records its last use

 private:
  Database* db_;
  Clock* clock_;
};

}  // namespace sp::catalog
