#include "catalog/auth_store.h"

namespace sp::catalog {
namespace {

constexpr char kUserColumns[] = "name, role, password_hash, created_us, password_changed_us";
constexpr char kTokenColumns[] =
    "id, name, digest, role, created_by, created_us, expires_us, revoked_us, last_used_us";

Role RoleOf(int64_t value) {
  if (value >= static_cast<int64_t>(Role::kAdmin)) return Role::kAdmin;
  if (value == static_cast<int64_t>(Role::kOperator)) return Role::kOperator;
  return Role::kViewer;  // anything odd gets the least
}

UserRecord ReadUser(const Statement& row) {
  UserRecord user;
  user.name = row.Text(0);
  user.role = RoleOf(row.Int(1));
  user.password_hash = row.Text(2);
  user.created_us = row.Int(3);
  user.password_changed_us = row.Int(4);
  return user;
}

TokenRecord ReadToken(const Statement& row) {
  TokenRecord token;
  token.id = row.Text(0);
  token.name = row.Text(1);
  token.digest = row.Text(2);
  token.role = RoleOf(row.Int(3));
  token.created_by = row.Text(4);
  token.created_us = row.Int(5);
  token.expires_us = row.OptionalInt(6);
  token.revoked_us = row.OptionalInt(7);
  token.last_used_us = row.OptionalInt(8);
  return token;
}

Status ExpectChanged(Database* db, const std::string& what) {
  if (db->ChangedRows() == 0) return absl::NotFoundError(what);
  return absl::OkStatus();
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kAdmin:
      return "admin";
  }
  return "viewer";
}

StatusOr<Role> ParseRole(const std::string& text) {
  for (Role role : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    if (text == RoleName(role)) return role;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", text, "' (roles: viewer, operator, admin)"));
}

Status AuthStore::AddUser(const UserRecord& user) {
  SP_ASSIGN_OR_RETURN(
      Statement insert,
      db_->Prepare(absl::StrCat("INSERT INTO users (", kUserColumns, ") VALUES (?, ?, ?, ?, ?)")));
  int64_t now = clock_->UnixMicros();
  insert.Bind(1, user.name).Bind(2, static_cast<int64_t>(user.role)).Bind(3, user.password_hash);
  Status added = insert.Bind(4, now).Bind(5, now).Run();
  if (absl::IsAlreadyExists(added)) {
    return absl::AlreadyExistsError(absl::StrCat("user '", user.name, "' exists already"));
  }
  return added;
}

StatusOr<UserRecord> AuthStore::FindUser(const std::string& name) {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare(absl::StrCat("SELECT ", kUserColumns,
                                                                 " FROM users WHERE name = ?")));
  query.Bind(1, name);
  SP_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no user '", name, "'"));
  return ReadUser(query);
}

StatusOr<std::vector<UserRecord>> AuthStore::ListUsers() {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare(absl::StrCat("SELECT ", kUserColumns,
                                                                 " FROM users ORDER BY name")));
  std::vector<UserRecord> users;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return users;
    users.push_back(ReadUser(query));
  }
}

Status AuthStore::RemoveUser(const std::string& name) {
  SP_ASSIGN_OR_RETURN(Statement remove, db_->Prepare("DELETE FROM users WHERE name = ?"));
  SP_RETURN_IF_ERROR(remove.Bind(1, name).Run());
  return ExpectChanged(db_, absl::StrCat("no user '", name, "'"));
}

Status AuthStore::SetPasswordHash(const std::string& name, const std::string& hash) {
  SP_ASSIGN_OR_RETURN(Statement update, db_->Prepare("UPDATE users SET password_hash = ?, "
                                                     "password_changed_us = ? WHERE name = ?"));
  SP_RETURN_IF_ERROR(update.Bind(1, hash).Bind(2, clock_->UnixMicros()).Bind(3, name).Run());
  return ExpectChanged(db_, absl::StrCat("no user '", name, "'"));
}

StatusOr<int64_t> AuthStore::CountUsers(std::optional<Role> role) {
  SP_ASSIGN_OR_RETURN(Statement query,
                      db_->Prepare(role ? "SELECT COUNT(*) FROM users WHERE role = ?"
                                        : "SELECT COUNT(*) FROM users"));
  if (role) query.Bind(1, static_cast<int64_t>(*role));
  SP_ASSIGN_OR_RETURN(bool row, query.Step());
  return row ? query.Int(0) : 0;
}

Status AuthStore::AddToken(const TokenRecord& token) {
  SP_ASSIGN_OR_RETURN(Statement insert,
                      db_->Prepare(absl::StrCat("INSERT INTO tokens (", kTokenColumns,
                                                ") VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)")));
  insert.Bind(1, token.id).Bind(2, token.name).Bind(3, token.digest);
  insert.Bind(4, static_cast<int64_t>(token.role)).Bind(5, token.created_by);
  return insert.Bind(6, clock_->UnixMicros()).Bind(7, token.expires_us).Run();
}

StatusOr<TokenRecord> AuthStore::FindTokenByDigest(const std::string& digest) {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare(absl::StrCat("SELECT ", kTokenColumns,
                                                                 " FROM tokens WHERE digest = ?")));
  query.Bind(1, digest);
  SP_ASSIGN_OR_RETURN(bool row, query.Step());
  if (!row) return absl::NotFoundError("unknown token");
  return ReadToken(query);
}

StatusOr<std::vector<TokenRecord>> AuthStore::ListTokens() {
  SP_ASSIGN_OR_RETURN(
      Statement query,
      db_->Prepare(absl::StrCat("SELECT ", kTokenColumns, " FROM tokens ORDER BY created_us")));
  std::vector<TokenRecord> tokens;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) return tokens;
    tokens.push_back(ReadToken(query));
  }
}

Status AuthStore::RevokeToken(const std::string& id) {
  SP_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE tokens SET revoked_us = COALESCE(revoked_us, ?) "
                                   "WHERE id = ?"));
  SP_RETURN_IF_ERROR(update.Bind(1, clock_->UnixMicros()).Bind(2, id).Run());
  return ExpectChanged(db_, absl::StrCat("no token '", id, "'"));
}

Status AuthStore::TouchToken(const std::string& id) {
  SP_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE tokens SET last_used_us = ? WHERE id = ?"));
  return update.Bind(1, clock_->UnixMicros()).Bind(2, id).Run();
}

}  // namespace sp::catalog
