// The catalog's schema, as an ordered list of steps. A step, once released, never changes:
// add a new step at the end of kSteps instead.
#include <array>

#include "catalog/catalog.h"

namespace sp::catalog {
namespace {

constexpr std::array<const char*, 3> kSteps = {
    // 1: VMs, volumes, NICs, events, settings.
    R"sql(
    CREATE TABLE vms (
      id INTEGER PRIMARY KEY,
      uuid TEXT NOT NULL UNIQUE,
      name TEXT NOT NULL UNIQUE,
      vcpus INTEGER NOT NULL,
      memory_mib INTEGER NOT NULL,
      firmware TEXT NOT NULL,
      kernel TEXT NOT NULL DEFAULT '',
      initrd TEXT NOT NULL DEFAULT '',
      append TEXT NOT NULL DEFAULT '',
      agent INTEGER NOT NULL,
      policy TEXT NOT NULL,
      origin TEXT NOT NULL,
      qmp_socket TEXT NOT NULL DEFAULT '',
      qga_socket TEXT NOT NULL DEFAULT '',
      space_limit_bytes INTEGER,
      state TEXT NOT NULL,
      state_reason TEXT NOT NULL DEFAULT '',
      state_changed_us INTEGER NOT NULL,
      created_us INTEGER NOT NULL
    );
    CREATE TABLE volumes (
      id INTEGER PRIMARY KEY,
      vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
      position INTEGER NOT NULL,
      name TEXT NOT NULL,
      path TEXT NOT NULL,
      format TEXT NOT NULL,
      boot INTEGER NOT NULL,
      serial TEXT NOT NULL,
      node_name TEXT NOT NULL,
      pci_slot INTEGER NOT NULL,
      UNIQUE (vm_id, name)
    );
    CREATE TABLE nics (
      id INTEGER PRIMARY KEY,
      vm_id INTEGER NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
      position INTEGER NOT NULL,
      mac TEXT NOT NULL UNIQUE,
      network TEXT NOT NULL
    );
    CREATE TABLE events (
      id INTEGER PRIMARY KEY,
      time_us INTEGER NOT NULL,
      vm_id INTEGER,
      vm_name TEXT NOT NULL DEFAULT '',
      kind TEXT NOT NULL,
      message TEXT NOT NULL
    );
    CREATE INDEX events_by_vm ON events (vm_id, time_us);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    )sql",
    // 2: the index of recovery points (recovery_points.h). Catalogs of version 1 may have it
    // already, created on first use before it was a step: IF NOT EXISTS keeps their rows.
    R"sql(
    CREATE TABLE IF NOT EXISTS recovery_points (
      id TEXT PRIMARY KEY,
      vm_uuid TEXT NOT NULL,
      vm_name TEXT NOT NULL,
      name TEXT NOT NULL,
      description TEXT NOT NULL DEFAULT '',
      parent_id TEXT NOT NULL DEFAULT '',
      state TEXT NOT NULL,
      consistency TEXT NOT NULL DEFAULT '',
      reason TEXT NOT NULL DEFAULT '',
      created_us INTEGER NOT NULL,
      logical_bytes INTEGER NOT NULL,
      new_stored_bytes INTEGER NOT NULL,
      volumes TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX IF NOT EXISTS recovery_points_by_vm ON recovery_points (vm_uuid, created_us);
    CREATE INDEX IF NOT EXISTS recovery_points_by_time ON recovery_points (created_us);
    )sql",
    // 3: the service: users, API tokens, jobs, protection schedules; who did what, from where.
    R"sql(
    CREATE TABLE users (
      name TEXT PRIMARY KEY,
      role INTEGER NOT NULL,
      password_hash TEXT NOT NULL,
      created_us INTEGER NOT NULL,
      password_changed_us INTEGER NOT NULL
    );
    CREATE TABLE tokens (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      digest TEXT NOT NULL UNIQUE,
      role INTEGER NOT NULL,
      created_by TEXT NOT NULL,
      created_us INTEGER NOT NULL,
      expires_us INTEGER,
      revoked_us INTEGER,
      last_used_us INTEGER
    );
    CREATE TABLE jobs (
      id TEXT PRIMARY KEY,
      kind TEXT NOT NULL,
      state TEXT NOT NULL,
      vm TEXT NOT NULL DEFAULT '',
      requested_by TEXT NOT NULL DEFAULT '',
      params_json TEXT NOT NULL DEFAULT '{}',
      progress_json TEXT NOT NULL DEFAULT '{}',
      result_json TEXT NOT NULL DEFAULT '',
      error TEXT NOT NULL DEFAULT '',
      error_code TEXT NOT NULL DEFAULT '',
      created_us INTEGER NOT NULL,
      started_us INTEGER,
      finished_us INTEGER
    );
    CREATE INDEX jobs_by_time ON jobs (created_us);
    CREATE INDEX jobs_by_state ON jobs (state);
    CREATE TABLE schedules (
      name TEXT PRIMARY KEY,
      spec_json TEXT NOT NULL,
      enabled INTEGER NOT NULL DEFAULT 1,
      last_run_us INTEGER,
      last_job TEXT NOT NULL DEFAULT '',
      created_us INTEGER NOT NULL,
      updated_us INTEGER NOT NULL
    );
    ALTER TABLE events ADD COLUMN actor TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN address TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN job_id TEXT NOT NULL DEFAULT '';
    )sql",
};

StatusOr<int64_t> UserVersion(Database* db) {
  SP_ASSIGN_OR_RETURN(Statement statement, db->Prepare("PRAGMA user_version"));
  SP_ASSIGN_OR_RETURN(bool row, statement.Step());
  return row ? statement.Int(0) : 0;
}

}  // namespace

Status MigrateSchema(Database* db) {
  SP_ASSIGN_OR_RETURN(auto transaction, Transaction::Begin(db));
  SP_ASSIGN_OR_RETURN(int64_t version, UserVersion(db));
  const auto newest = static_cast<int64_t>(kSteps.size());
  if (version > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("catalog ", db->path(), " has schema version ", version,
                     "; this stillpoint knows up to ", newest, ". Use a newer stillpoint"));
  }
  for (int64_t step = version; step < newest; ++step) {
    SP_RETURN_IF_ERROR(db->Exec(kSteps[static_cast<size_t>(step)]));
  }
  if (version != newest) {
    SP_RETURN_IF_ERROR(db->Exec(absl::StrCat("PRAGMA user_version = ", newest)));
  }
  return transaction->Commit();
}

}  // namespace sp::catalog
