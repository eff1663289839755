// The catalog's index of recovery points: one row per point, so that listing thousands of them
// is one query instead of reading every manifest. It is only an index: the repository's
// manifests are the truth, and ReplaceAll rebuilds it from them (`stillpoint repo
// rebuild-catalog`). The catalog does not read manifests itself: its callers hand it the rows
// (capture::RecordFromManifest makes one of a manifest).
//
// Lives in the catalog's database (Catalog::db()); its table is part of the catalog's schema.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "catalog/database.h"
#include "platform/status.h"

namespace sp::catalog {

struct RecoveryPointRecord {
  std::string id;
  std::string vm_uuid;  // the VM identity recorded in the manifest
  std::string vm_name;
  std::string name;
  std::string description;
  std::string parent_id;    // empty for a full capture
  std::string state;        // "complete" (an index holds only committed points today)
  std::string consistency;  // "application" | "crash" | "" when not recorded
  std::string reason;       // why that consistency, in words
  int64_t created_us = 0;
  int64_t logical_bytes = 0;     // sum of the volume sizes
  int64_t new_stored_bytes = 0;  // what this point added to the repository
  std::vector<std::string> volumes;
};

class RecoveryPointIndex {
 public:
  // `db` is not owned and must outlive this.
  // REQUIRES: `db`'s schema is up to date (Catalog::Open brings it there).
  static StatusOr<std::unique_ptr<RecoveryPointIndex>> Open(Database* db);

  // Adds or replaces the row of `record.id`.
  Status Upsert(const RecoveryPointRecord& record);
  // OK when there was no such row.
  Status Remove(const std::string& id);
  // NotFound when absent.
  StatusOr<RecoveryPointRecord> Get(const std::string& id);
  // Oldest first; every VM when `vm` is empty, else the points whose VM UUID or name is `vm`.
  StatusOr<std::vector<RecoveryPointRecord>> List(const std::string& vm = "");
  // Replaces every row with `records` in one transaction.
  Status ReplaceAll(const std::vector<RecoveryPointRecord>& records);

 private:
  explicit RecoveryPointIndex(Database* db) : db_(db) {}
  Status Insert(const RecoveryPointRecord& record);
  Database* db_;
};

}  // namespace sp::catalog
