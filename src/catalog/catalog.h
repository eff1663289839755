// The catalog: stillpoint's SQLite index of VMs, volumes, NICs, events and settings (and, in
// recovery_points.h, of recovery points). One file in the state directory, WAL mode: several
// stillpoint processes (CLI commands, a VM's monitor) use it at once.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "catalog/records.h"
#include "platform/clock.h"
#include "platform/status.h"

namespace sp::catalog {

class Catalog {
 public:
  // Opens or creates the catalog at `path` and brings its schema up to date.
  // FailedPrecondition when the file was written by a newer stillpoint.
  static StatusOr<std::unique_ptr<Catalog>> Open(const std::string& path,
                                                 Clock* clock = Clock::Real());

  // Adds `vm` (with its volumes and NICs) in one transaction; returns its id.
  // AlreadyExists when the name, UUID or a MAC is taken; nothing is added then.
  StatusOr<int64_t> AddVm(const VmRecord& vm);
  // By name, or by UUID. NotFound names what was looked for.
  StatusOr<VmRecord> FindVm(const std::string& name_or_uuid);
  StatusOr<VmRecord> GetVm(int64_t id);
  StatusOr<std::vector<VmRecord>> ListVms();
  // NotFound when no such VM. Volumes, NICs go with it; events stay (they keep the VM's name).
  Status RemoveVm(int64_t id);
  // Replaces the volumes of an (attached) VM, e.g. after discovering them with query-block.
  Status ReplaceVolumes(int64_t vm_id, const std::vector<VolumeRecord>& volumes);

  Status SetPowerState(int64_t vm_id, PowerState state, const std::string& reason);
  Status SetSpaceLimit(int64_t vm_id, std::optional<int64_t> bytes);
  // True when some VM in the catalog already uses `mac`.
  StatusOr<bool> MacInUse(const std::string& mac);

  // Records an event; `vm` may be null for system-wide events.
  Status AddEvent(const VmRecord* vm, const std::string& kind, const std::string& message,
                  const EventOrigin& origin = {});
  // Newest first; all VMs when vm_id is empty.
  StatusOr<std::vector<EventRecord>> ListEvents(std::optional<int64_t> vm_id, int limit = 50);
  // Events matching `filter`, newest first (oldest first with after_id set, for a live stream).
  StatusOr<std::vector<EventRecord>> QueryEvents(const EventFilter& filter);

  StatusOr<std::optional<std::string>> GetSetting(const std::string& key);
  Status SetSetting(const std::string& key, const std::string& value);

  Database* db() { return db_.get(); }
  Clock* clock() { return clock_; }

 private:
  Catalog(std::unique_ptr<Database> db, Clock* clock) : db_(std::move(db)), clock_(clock) {}
  Status LoadChildren(VmRecord* vm);
  StatusOr<std::vector<VmRecord>> QueryVms(const std::string& where, const std::string& key);

  std::unique_ptr<Database> db_;
  Clock* clock_;
};

// Brings the schema of `db` to the newest version (schema.cc holds the steps, applied in order,
// each once, tracked in PRAGMA user_version).
Status MigrateSchema(Database* db);

}  // namespace sp::catalog
