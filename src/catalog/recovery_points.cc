#include "catalog/recovery_points.h"

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace sp::catalog {
namespace {

constexpr char kColumns[] =
    "id, vm_uuid, vm_name, name, description, parent_id, state, consistency, reason, created_us, "
    "logical_bytes, new_stored_bytes, volumes";

RecoveryPointRecord ReadRow(const Statement& row) {
  RecoveryPointRecord record;
  record.id = row.Text(0);
  record.vm_uuid = row.Text(1);
  record.vm_name = row.Text(2);
  record.name = row.Text(3);
  record.description = row.Text(4);
  record.parent_id = row.Text(5);
  record.state = row.Text(6);
  record.consistency = row.Text(7);
  record.reason = row.Text(8);
  record.created_us = row.Int(9);
  record.logical_bytes = row.Int(10);
  record.new_stored_bytes = row.Int(11);
  std::string volumes = row.Text(12);
  if (!volumes.empty()) record.volumes = absl::StrSplit(volumes, '\n');
  return record;
}

}  // namespace

StatusOr<std::unique_ptr<RecoveryPointIndex>> RecoveryPointIndex::Open(Database* db) {
  return std::unique_ptr<RecoveryPointIndex>(new RecoveryPointIndex(db));
}

Status RecoveryPointIndex::Insert(const RecoveryPointRecord& record) {
  SP_ASSIGN_OR_RETURN(
      Statement statement,
      db_->Prepare(absl::StrCat("INSERT OR REPLACE INTO recovery_points (", kColumns,
                                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")));
  statement.Bind(1, record.id).Bind(2, record.vm_uuid).Bind(3, record.vm_name);
  statement.Bind(4, record.name).Bind(5, record.description).Bind(6, record.parent_id);
  statement.Bind(7, record.state).Bind(8, record.consistency).Bind(9, record.reason);
  statement.Bind(10, record.created_us).Bind(11, record.logical_bytes);
  statement.Bind(12, record.new_stored_bytes).Bind(13, absl::StrJoin(record.volumes, "\n"));
  return statement.Run();
}

Status RecoveryPointIndex::Upsert(const RecoveryPointRecord& record) { return Insert(record); }

Status RecoveryPointIndex::Remove(const std::string& id) {
  SP_ASSIGN_OR_RETURN(Statement statement,
                      db_->Prepare("DELETE FROM recovery_points WHERE id = ?"));
  statement.Bind(1, id);
  return statement.Run();
}

StatusOr<RecoveryPointRecord> RecoveryPointIndex::Get(const std::string& id) {
  SP_ASSIGN_OR_RETURN(
      Statement statement,
      db_->Prepare(absl::StrCat("SELECT ", kColumns, " FROM recovery_points WHERE id = ?")));
  statement.Bind(1, id);
  SP_ASSIGN_OR_RETURN(bool row, statement.Step());
  if (!row) return absl::NotFoundError(absl::StrCat("no recovery point ", id, " in the catalog"));
  return ReadRow(statement);
}

StatusOr<std::vector<RecoveryPointRecord>> RecoveryPointIndex::List(const std::string& vm) {
  std::string sql = absl::StrCat("SELECT ", kColumns, " FROM recovery_points",
                                 vm.empty() ? "" : " WHERE vm_uuid = ? OR vm_name = ?",
                                 " ORDER BY created_us, id");
  SP_ASSIGN_OR_RETURN(Statement statement, db_->Prepare(sql));
  if (!vm.empty()) statement.Bind(1, vm).Bind(2, vm);
  std::vector<RecoveryPointRecord> records;
  while (true) {
    SP_ASSIGN_OR_RETURN(bool row, statement.Step());
    if (!row) break;
    records.push_back(ReadRow(statement));
  }
  return records;
}

Status RecoveryPointIndex::ReplaceAll(const std::vector<RecoveryPointRecord>& records) {
  SP_ASSIGN_OR_RETURN(auto transaction, Transaction::Begin(db_));
  SP_RETURN_IF_ERROR(db_->Exec("DELETE FROM recovery_points"));
  for (const auto& record : records) SP_RETURN_IF_ERROR(Insert(record));
  return transaction->Commit();
}

}  // namespace sp::catalog
