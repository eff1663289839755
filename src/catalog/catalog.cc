#include "catalog/catalog.h"

#include <algorithm>

namespace sp::catalog {
namespace {

constexpr char kVmColumns[] =
    "id, uuid, name, vcpus, memory_mib, firmware, kernel, initrd, append, agent, policy, origin, "
    "qmp_socket, qga_socket, space_limit_bytes, state, state_reason, state_changed_us, created_us";

VmRecord ReadVmRow(const Statement& row) {
  VmRecord vm;
  vm.id = row.Int(0);
  vm.uuid = row.Text(1);
  vm.name = row.Text(2);
  vm.vcpus = static_cast<int>(row.Int(3));
  vm.memory_mib = row.Int(4);
  vm.firmware = row.Text(5);
  vm.kernel = row.Text(6);
  vm.initrd = row.Text(7);
  vm.append = row.Text(8);
  vm.agent = row.Int(9) != 0;
  vm.policy = row.Text(10);
  vm.origin = row.Text(11);
  vm.qmp_socket = row.Text(12);
  vm.qga_socket = row.Text(13);
  vm.space_limit_bytes = row.OptionalInt(14);
  vm.state = ParsePowerState(row.Text(15)).value_or(PowerState::kDefined);
  vm.state_reason = row.Text(16);
  vm.state_changed_us = row.Int(17);
  vm.created_us = row.Int(18);
  return vm;
}

Status InsertVolumes(Database* db, int64_t vm_id, const std::vector<VolumeRecord>& volumes) {
  for (size_t i = 0; i < volumes.size(); ++i) {
    const VolumeRecord& volume = volumes[i];
    SP_ASSIGN_OR_RETURN(Statement insert,
                        db->Prepare("INSERT INTO volumes (vm_id, position, name, path, format, "
                                    "boot, serial, node_name, pci_slot) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    insert.Bind(1, vm_id).Bind(2, static_cast<int64_t>(i)).Bind(3, volume.name);
    insert.Bind(4, volume.path).Bind(5, volume.format).Bind(6, int64_t{volume.boot});
    insert.Bind(7, volume.serial).Bind(8, volume.node_name).Bind(9, int64_t{volume.pci_slot});
    Status inserted = insert.Run();
    if (inserted.code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(
          absl::StrCat("two volumes are named '", volume.name, "'; volume names must differ"));
    }
    SP_RETURN_IF_ERROR(inserted);
  }
  return absl::OkStatus();
}

}  // namespace

const char* PowerStateName(PowerState state) {
  switch (state) {
    case PowerState::kDefined:
      return "defined";
    case PowerState::kRunning:
      return "running";
    case PowerState::kStoppedClean:
      return "stopped-clean";
    case PowerState::kStoppedDirty:
      return "stopped-dirty";
    case PowerState::kStopped:
      return "stopped";
  }
  return "unknown";
}

std::optional<PowerState> ParsePowerState(const std::string& name) {
  for (PowerState state : {PowerState::kDefined, PowerState::kRunning, PowerState::kStoppedClean,
                           PowerState::kStoppedDirty, PowerState::kStopped}) {
    if (name == PowerStateName(state)) return state;
  }
  return std::nullopt;
}

const VolumeRecord* VmRecord::BootVolume() const {
  for (const VolumeRecord& volume : volumes) {
    if (volume.boot) return &volume;
  }
  return nullptr;
}

const VolumeRecord* VmRecord::FindVolume(const std::string& volume_name) const {
  for (const VolumeRecord& volume : volumes) {
    if (volume.name == volume_name) return &volume;
  }
  return nullptr;
}

StatusOr<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, Clock* clock) {
  SP_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(path));
  SP_RETURN_IF_ERROR(MigrateSchema(db.get()));
  return std::unique_ptr<Catalog>(new Catalog(std::move(db), clock));
}

StatusOr<int64_t> Catalog::AddVm(const VmRecord& vm) {
  SP_ASSIGN_OR_RETURN(auto transaction, Transaction::Begin(db_.get()));
  if (FindVm(vm.name).ok()) {
    return absl::AlreadyExistsError(
        absl::StrCat("a VM named '", vm.name, "' already exists; choose another name"));
  }
  SP_ASSIGN_OR_RETURN(
      Statement insert,
      db_->Prepare("INSERT INTO vms (uuid, name, vcpus, memory_mib, firmware, kernel, initrd, "
                   "append, agent, policy, origin, qmp_socket, qga_socket, space_limit_bytes, "
                   "state, state_reason, state_changed_us, created_us) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  int64_t now = clock_->UnixMicros();
  insert.Bind(1, vm.uuid).Bind(2, vm.name).Bind(3, int64_t{vm.vcpus}).Bind(4, vm.memory_mib);
  insert.Bind(5, vm.firmware).Bind(6, vm.kernel).Bind(7, vm.initrd).Bind(8, vm.append);
  insert.Bind(9, int64_t{vm.agent}).Bind(10, vm.policy).Bind(11, vm.origin);
  insert.Bind(12, vm.qmp_socket).Bind(13, vm.qga_socket).Bind(14, vm.space_limit_bytes);
  insert.Bind(15, PowerStateName(vm.state)).Bind(16, vm.state_reason).Bind(17, now).Bind(18, now);
  SP_RETURN_IF_ERROR(insert.Run());
  int64_t id = db_->LastInsertId();
  SP_RETURN_IF_ERROR(InsertVolumes(db_.get(), id, vm.volumes));
  for (size_t i = 0; i < vm.nics.size(); ++i) {
    SP_ASSIGN_OR_RETURN(Statement nic, db_->Prepare("INSERT INTO nics (vm_id, position, mac, "
                                                    "network) VALUES (?, ?, ?, ?)"));
    nic.Bind(1, id).Bind(2, static_cast<int64_t>(i)).Bind(3, vm.nics[i].mac);
    Status inserted = nic.Bind(4, vm.nics[i].network).Run();
    if (inserted.code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(
          absl::StrCat("MAC address ", vm.nics[i].mac, " is already used by another NIC"));
    }
    SP_RETURN_IF_ERROR(inserted);
  }
  SP_RETURN_IF_ERROR(transaction->Commit());
  return id;
}

StatusOr<std::vector<VmRecord>> Catalog::QueryVms(const std::string& where,
                                                  const std::string& key) {
  SP_ASSIGN_OR_RETURN(Statement query,
                      db_->Prepare(absl::StrCat("SELECT ", kVmColumns, " FROM vms ", where)));
  if (!key.empty()) query.Bind(1, key);
  std::vector<VmRecord> vms;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    vms.push_back(ReadVmRow(query));
  }
  for (VmRecord& vm : vms) SP_RETURN_IF_ERROR(LoadChildren(&vm));
  return vms;
}

Status Catalog::LoadChildren(VmRecord* vm) {
  SP_ASSIGN_OR_RETURN(Statement volumes,
                      db_->Prepare("SELECT name, path, format, boot, serial, node_name, pci_slot "
                                   "FROM volumes WHERE vm_id = ? ORDER BY position"));
  volumes.Bind(1, vm->id);
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, volumes.Step());
    if (!row) break;
    vm->volumes.push_back({volumes.Text(0), volumes.Text(1), volumes.Text(2), volumes.Int(3) != 0,
                           volumes.Text(4), volumes.Text(5), static_cast<int>(volumes.Int(6))});
  }
  SP_ASSIGN_OR_RETURN(Statement nics, db_->Prepare("SELECT mac, network FROM nics WHERE "
                                                   "vm_id = ? ORDER BY position"));
  nics.Bind(1, vm->id);
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, nics.Step());
    if (!row) break;
    vm->nics.push_back({nics.Text(0), nics.Text(1)});
  }
  return absl::OkStatus();
}

StatusOr<VmRecord> Catalog::FindVm(const std::string& name_or_uuid) {
  SP_ASSIGN_OR_RETURN(auto vms, QueryVms("WHERE name = ?1 OR uuid = ?1", name_or_uuid));
  if (vms.empty()) {
    return absl::NotFoundError(absl::StrCat("no VM named '", name_or_uuid,
                                            "'; `stillpoint vm list` shows the VMs there are"));
  }
  return std::move(vms.front());
}

StatusOr<VmRecord> Catalog::GetVm(int64_t id) {
  SP_ASSIGN_OR_RETURN(auto vms, QueryVms(absl::StrCat("WHERE id = ", id), ""));
  if (vms.empty()) return absl::NotFoundError(absl::StrCat("no VM with id ", id));
  return std::move(vms.front());
}

StatusOr<std::vector<VmRecord>> Catalog::ListVms() { return QueryVms("ORDER BY name", ""); }

Status Catalog::RemoveVm(int64_t id) {
  SP_ASSIGN_OR_RETURN(Statement remove, db_->Prepare("DELETE FROM vms WHERE id = ?"));
  SP_RETURN_IF_ERROR(remove.Bind(1, id).Run());
  if (db_->ChangedRows() == 0) return absl::NotFoundError(absl::StrCat("no VM with id ", id));
  return absl::OkStatus();
}

Status Catalog::ReplaceVolumes(int64_t vm_id, const std::vector<VolumeRecord>& volumes) {
  SP_ASSIGN_OR_RETURN(auto transaction, Transaction::Begin(db_.get()));
  SP_ASSIGN_OR_RETURN(Statement remove, db_->Prepare("DELETE FROM volumes WHERE vm_id = ?"));
  SP_RETURN_IF_ERROR(remove.Bind(1, vm_id).Run());
  SP_RETURN_IF_ERROR(InsertVolumes(db_.get(), vm_id, volumes));
  return transaction->Commit();
}

Status Catalog::SetPowerState(int64_t vm_id, PowerState state, const std::string& reason) {
  SP_ASSIGN_OR_RETURN(Statement update, db_->Prepare("UPDATE vms SET state = ?, state_reason = ?, "
                                                     "state_changed_us = ? WHERE id = ?"));
  update.Bind(1, PowerStateName(state)).Bind(2, reason).Bind(3, clock_->UnixMicros());
  return update.Bind(4, vm_id).Run();
}

Status Catalog::SetSpaceLimit(int64_t vm_id, std::optional<int64_t> bytes) {
  SP_ASSIGN_OR_RETURN(Statement update,
                      db_->Prepare("UPDATE vms SET space_limit_bytes = ? WHERE id = ?"));
  return update.Bind(1, bytes).Bind(2, vm_id).Run();
}

StatusOr<bool> Catalog::MacInUse(const std::string& mac) {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare("SELECT 1 FROM nics WHERE mac = ?"));
  return query.Bind(1, mac).Step();
}

Status Catalog::AddEvent(const VmRecord* vm, const std::string& kind, const std::string& message,
                         const EventOrigin& origin) {
  SP_ASSIGN_OR_RETURN(Statement insert,
                      db_->Prepare("INSERT INTO events (time_us, vm_id, vm_name, kind, message, "
                                   "actor, address, job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  insert.Bind(1, clock_->UnixMicros());
  insert.Bind(2, vm ? std::optional<int64_t>(vm->id) : std::nullopt);
  insert.Bind(3, vm ? vm->name : std::string());
  insert.Bind(4, kind).Bind(5, message).Bind(6, origin.actor).Bind(7, origin.address);
  return insert.Bind(8, origin.job_id).Run();
}

StatusOr<std::vector<EventRecord>> Catalog::ListEvents(std::optional<int64_t> vm_id, int limit) {
  EventFilter filter;
  filter.vm_id = vm_id;
  filter.limit = limit;
  return QueryEvents(filter);
}

StatusOr<std::vector<EventRecord>> Catalog::QueryEvents(const EventFilter& filter) {
  std::string order = filter.after_id ? "ORDER BY id ASC" : "ORDER BY time_us DESC, id DESC";
  SP_ASSIGN_OR_RETURN(
      Statement query,
      db_->Prepare(absl::StrCat(
          "SELECT id, time_us, vm_id, vm_name, kind, message, actor, address, job_id FROM events "
          "WHERE (?1 IS NULL OR vm_id = ?1) AND (?2 = '' OR substr(kind, 1, length(?2)) = ?2) "
          "AND (?3 IS NULL OR time_us >= ?3) AND (?4 IS NULL OR time_us <= ?4) "
          "AND (?5 IS NULL OR id > ?5) ",
          order, " LIMIT ?6 OFFSET ?7")));
  query.Bind(1, filter.vm_id).Bind(2, filter.kind_prefix).Bind(3, filter.since_us);
  query.Bind(4, filter.until_us).Bind(5, filter.after_id);
  query.Bind(6, int64_t{filter.limit}).Bind(7, int64_t{filter.offset});
  std::vector<EventRecord> events;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, query.Step());
    if (!row) break;
    events.push_back({query.Int(0), query.Int(1), query.OptionalInt(2), query.Text(3),
                      query.Text(4), query.Text(5), query.Text(6), query.Text(7), query.Text(8)});
  }
  return events;
}

StatusOr<std::optional<std::string>> Catalog::GetSetting(const std::string& key) {
  SP_ASSIGN_OR_RETURN(Statement query, db_->Prepare("SELECT value FROM settings WHERE key = ?"));
  SP_ASSIGN_OR_RETURN(bool row, query.Bind(1, key).Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(query.Text(0));
}

Status Catalog::SetSetting(const std::string& key, const std::string& value) {
  SP_ASSIGN_OR_RETURN(Statement upsert,
                      db_->Prepare("INSERT INTO settings (key, value) VALUES (?, ?) "
                                   "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
  return upsert.Bind(1, key).Bind(2, value).Run();
}

}  // namespace sp::catalog
