// The catalog's schema, as an ordered list of steps. A step, once released, never changes:
// add a new step at the end of kSteps instead.
#include <array>

#include "catalog/catalog.h"

namespace sp::catalog {
namespace {

constexpr std::array<const char*, 2> kSteps = {
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
    return absl::FailedPreconditionError(absl::StrCat(
        "catalog ", db->path(), " has schema version ", version, "; this stillpoint knows up to ",
        newest, ". Use a newer stillpoint"));
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
