#include "catalog/recovery_points.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "catalog/catalog.h"
#include "gtest/gtest.h"
#include "testing/temp_dir.h"

namespace sp::catalog {
namespace {

RecoveryPointRecord Sample(int i, const std::string& vm) {
  RecoveryPointRecord record;
  record.id = absl::StrFormat("20261122T%06dZ-%08x", i % 240000, i);
  record.vm_uuid = "uuid-" + vm;
  record.vm_name = vm;
  record.name = vm;
  record.state = "complete";
  record.consistency = i % 2 ? "application" : "crash";
  record.reason = "2 filesystems frozen by guest agent";
  record.created_us = 1'700'000'000'000'000 + i;
  record.logical_bytes = 10LL << 30;
  record.new_stored_bytes = 1 << 20;
  record.volumes = {"root", "data"};
  return record;
}

class RecoveryPointIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto catalog = Catalog::Open(dir_.path() + "/catalog.db");
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    catalog_ = *std::move(catalog);
    auto index = RecoveryPointIndex::Open(catalog_->db());
    ASSERT_TRUE(index.ok()) << index.status();
    index_ = *std::move(index);
  }
  sp::testing::TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<RecoveryPointIndex> index_;
};

TEST_F(RecoveryPointIndexTest, UpsertGetListRemove) {
  ASSERT_TRUE(index_->Upsert(Sample(2, "web01")).ok());
  ASSERT_TRUE(index_->Upsert(Sample(1, "db01")).ok());
  auto got = index_->Get(Sample(2, "web01").id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->volumes, (std::vector<std::string>{"root", "data"}));
  EXPECT_EQ(got->consistency, "crash");
  EXPECT_EQ(index_->List()->size(), 2u);
  EXPECT_EQ(index_->List()->front().vm_name, "db01");  // oldest first
  EXPECT_EQ(index_->List("web01")->size(), 1u);
  EXPECT_EQ(index_->List("uuid-db01")->size(), 1u);
  ASSERT_TRUE(index_->Remove(Sample(2, "web01").id).ok());
  EXPECT_TRUE(absl::IsNotFound(index_->Get(Sample(2, "web01").id).status()));
}

TEST_F(RecoveryPointIndexTest, ReopeningKeepsRows) {
  ASSERT_TRUE(index_->Upsert(Sample(1, "web01")).ok());
  auto again = RecoveryPointIndex::Open(catalog_->db());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->List()->size(), 1u);
}

TEST_F(RecoveryPointIndexTest, TenThousandPointsListWellUnderASecond) {
  std::vector<RecoveryPointRecord> records;
  for (int i = 0; i < 10000; ++i) records.push_back(Sample(i, i % 10 ? "web01" : "db01"));
  ASSERT_TRUE(index_->ReplaceAll(records).ok());
  auto start = std::chrono::steady_clock::now();
  auto all = index_->List();
  auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 10000u);
  // Typically tens of milliseconds; the bound leaves room for a loaded machine and debug builds.
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 900);
  EXPECT_EQ(index_->List("db01")->size(), 1000u);
}

// Catalogs written before the table was a schema step had it from its first use, or not at all.
// Turns a catalog of the newest schema back into version 1 (what later steps added goes).
void MakeVersionOne(Database* db) {
  ASSERT_TRUE(db->Exec("DROP TABLE users; DROP TABLE tokens; DROP TABLE jobs; "
                       "DROP TABLE schedules; ALTER TABLE events DROP COLUMN actor; "
                       "ALTER TABLE events DROP COLUMN address; "
                       "ALTER TABLE events DROP COLUMN job_id; PRAGMA user_version = 1")
                  .ok());
}

TEST(RecoveryPointSchemaTest, VersionOneCatalogsKeepTheirRowsOrGainTheTable) {
  sp::testing::TempDir dir;
  std::string with_rows = dir.path() + "/with-rows.db", without = dir.path() + "/without.db";
  {
    auto catalog = Catalog::Open(with_rows);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    ASSERT_TRUE((*RecoveryPointIndex::Open((*catalog)->db()))->Upsert(Sample(1, "web01")).ok());
    MakeVersionOne((*catalog)->db());
    auto bare = Catalog::Open(without);
    ASSERT_TRUE(bare.ok()) << bare.status();
    ASSERT_TRUE((*bare)->db()->Exec("DROP TABLE recovery_points").ok());
    MakeVersionOne((*bare)->db());
  }
  for (const std::string& path : {with_rows, without}) {
    auto catalog = Catalog::Open(path);
    ASSERT_TRUE(catalog.ok()) << catalog.status();
    auto version = (*catalog)->db()->Prepare("PRAGMA user_version");
    ASSERT_TRUE(version.ok()) << version.status();
    auto row = version->Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(version->Int(0), 3) << path;
    auto rows = (*RecoveryPointIndex::Open((*catalog)->db()))->List();
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(rows->size(), path == with_rows ? 1u : 0u) << path;
  }
}

}  // namespace
}  // namespace sp::catalog
