#include "catalog/catalog.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "testing/temp_dir.h"

namespace sp::catalog {
namespace {

VmRecord SampleVm(const std::string& name, const std::string& mac) {
  VmRecord vm;
  vm.uuid = "uuid-" + name;
  vm.name = name;
  vm.vcpus = 2;
  vm.memory_mib = 1024;
  vm.volumes = {
      {"root", "/images/" + name + "-root.qcow2", "qcow2", true, "sp-root", "root-fmt", 4},
      {"data", "/images/" + name + "-data.qcow2", "qcow2", false, "sp-data", "data-fmt", 5}};
  vm.nics = {{mac, "user"}};
  return vm;
}

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = Catalog::Open(dir_.path() + "/catalog.db");
    ASSERT_TRUE(opened.ok()) << opened.status();
    catalog_ = std::move(opened).value();
  }
  sp::testing::TempDir dir_;
  std::unique_ptr<Catalog> catalog_;
};

TEST(CatalogModesTest, CatalogAndItsLogAreTheOwnersOnlyWhateverTheUmask) {
  sp::testing::TempDir dir;
  mode_t old = ::umask(0);
  {
    auto opened = Catalog::Open(dir.path() + "/catalog.db");
    ASSERT_TRUE(opened.ok()) << opened.status();
    ASSERT_TRUE((*opened)->AddVm(SampleVm("web01", "52:54:00:00:00:01")).ok());
    for (const char* file : {"/catalog.db", "/catalog.db-wal"}) {
      struct stat info {};
      ASSERT_EQ(::stat((dir.path() + file).c_str(), &info), 0) << file;
      EXPECT_EQ(info.st_mode & 0777u, 0600u) << file;
    }
  }
  ::umask(old);
}

TEST_F(CatalogTest, AddFindListRemoveRoundTrip) {
  auto id = catalog_->AddVm(SampleVm("web01", "52:54:00:00:00:01"));
  ASSERT_TRUE(id.ok()) << id.status();
  auto found = catalog_->FindVm("web01");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->id, *id);
  EXPECT_EQ(found->vcpus, 2);
  ASSERT_EQ(found->volumes.size(), 2u);
  EXPECT_EQ(found->BootVolume()->name, "root");
  EXPECT_EQ(found->FindVolume("data")->serial, "sp-data");
  EXPECT_EQ(found->nics.at(0).mac, "52:54:00:00:00:01");
  EXPECT_EQ(found->state, PowerState::kDefined);
  EXPECT_TRUE(catalog_->FindVm("uuid-web01").ok());
  ASSERT_TRUE(catalog_->RemoveVm(*id).ok());
  EXPECT_EQ(catalog_->FindVm("web01").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(*catalog_->MacInUse("52:54:00:00:00:01") == false);
}

TEST_F(CatalogTest, DuplicateNameOrMacAddsNothing) {
  ASSERT_TRUE(catalog_->AddVm(SampleVm("web01", "52:54:00:00:00:01")).ok());
  auto same_name = catalog_->AddVm(SampleVm("web01", "52:54:00:00:00:02"));
  EXPECT_EQ(same_name.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(std::string(same_name.status().message()).find("web01"), std::string::npos);
  auto same_mac = catalog_->AddVm(SampleVm("web02", "52:54:00:00:00:01"));
  EXPECT_EQ(same_mac.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(catalog_->FindVm("web02").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(catalog_->ListVms()->size(), 1u);
}

TEST_F(CatalogTest, PowerStateEventsAndSettingsPersistAcrossReopen) {
  auto id = catalog_->AddVm(SampleVm("web01", "52:54:00:00:00:01"));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(
      catalog_
          ->SetPowerState(*id, PowerState::kStoppedDirty, "QEMU was killed by signal 9 (SIGKILL)")
          .ok());
  auto vm = catalog_->GetVm(*id);
  ASSERT_TRUE(catalog_->AddEvent(&*vm, "vm.stopped", "killed").ok());
  ASSERT_TRUE(catalog_->SetSetting("snapshots.enabled", "false").ok());
  catalog_.reset();
  auto reopened = Catalog::Open(dir_.path() + "/catalog.db");
  ASSERT_TRUE(reopened.ok());
  auto again = (*reopened)->FindVm("web01");
  EXPECT_EQ(again->state, PowerState::kStoppedDirty);
  EXPECT_EQ(again->state_reason, "QEMU was killed by signal 9 (SIGKILL)");
  auto events = (*reopened)->ListEvents(*id);
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].vm_name, "web01");
  EXPECT_EQ(*(*reopened)->GetSetting("snapshots.enabled"), "false");
  EXPECT_FALSE((*reopened)->GetSetting("missing")->has_value());
}

TEST_F(CatalogTest, RefusesCatalogFromNewerVersion) {
  ASSERT_TRUE(catalog_->db()->Exec("PRAGMA user_version = 999").ok());
  catalog_.reset();
  auto reopened = Catalog::Open(dir_.path() + "/catalog.db");
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(reopened.status().message()).find("newer stillpoint"), std::string::npos);
}

}  // namespace
}  // namespace sp::catalog
