// The catalog's row of a committed point, and the VM configuration a point records: the same JSON
// the catalog gives a VM (what version-1 manifests held, and what `snapshot show --json` prints).
#include "capture/point_record.h"

#include "catalog/records_json.h"
#include "gtest/gtest.h"

namespace sp::capture {
namespace {

TEST(RecordFromManifestTest, TakesConsistencySizesAndVolumes) {
  repo::Manifest manifest;
  manifest.id = "p1";
  manifest.vm_id = "u";
  manifest.vm_name = "web01";
  manifest.parent_id = "p0";
  manifest.created_micros = 42;
  manifest.point_description.consistency = repo::PointConsistency::kApplication;
  manifest.point_description.reason = "frozen";
  manifest.volumes.push_back(repo::ManifestVolume{"root", 100, "0.idx", {}, 1, 0, 1, 40});
  manifest.volumes.push_back(repo::ManifestVolume{"data", 50, "1.idx", {}, 1, 0, 1, 2});
  auto record = RecordFromManifest(manifest);
  EXPECT_EQ(record.id, "p1");
  EXPECT_EQ(record.vm_uuid, "u");
  EXPECT_EQ(record.parent_id, "p0");
  EXPECT_EQ(record.state, "complete");
  EXPECT_EQ(record.consistency, "application");
  EXPECT_EQ(record.reason, "frozen");
  EXPECT_EQ(record.created_us, 42);
  EXPECT_EQ(record.logical_bytes, 150);
  EXPECT_EQ(record.new_stored_bytes, 42);
  EXPECT_EQ(record.volumes, (std::vector<std::string>{"root", "data"}));
  // A point that recorded no consistency (version-1 data) is listed without one, as before.
  manifest.point_description.consistency = repo::PointConsistency::kUnknown;
  EXPECT_EQ(RecordFromManifest(manifest).consistency, "");
}

catalog::VmRecord Vm() {
  catalog::VmRecord vm;
  vm.id = 7;
  vm.uuid = "46eae26a-5fb2-46d1-913e-c1243c338691";
  vm.name = "web01";
  vm.vcpus = 2;
  vm.memory_mib = 1024;
  vm.state = catalog::PowerState::kRunning;
  vm.state_reason = "started by stillpoint";
  vm.state_changed_us = 1'796'314'600'037'000;
  vm.created_us = 1'796'314'599'416'000;
  vm.volumes = {{"root", "/imgs/root.qcow2", "qcow2", true, "sp-root", "root-fmt", 4},
                {"data", "/imgs/data.raw", "raw", false, "sp-data", "data-fmt", 5}};
  vm.nics = {{"52:54:00:41:e5:42", "none"}};
  return vm;
}

TEST(PointVmFromRecordTest, EncodesAsTheCatalogShowsTheVm) {
  catalog::VmRecord managed = Vm();
  catalog::VmRecord booted = Vm();
  booted.kernel = "/k";
  booted.initrd = "/i";
  booted.append = "quiet";
  catalog::VmRecord attached = Vm();
  attached.origin = "attached";
  attached.qmp_socket = "/run/web01.qmp";
  attached.space_limit_bytes = 10LL << 30;
  for (const catalog::VmRecord& vm : {managed, booted, attached}) {
    repo::PointDescription description;
    description.vm = PointVmFromRecord(vm);
    EXPECT_EQ(repo::EncodePointDescription(description)["vm"], catalog::VmToJson(vm))
        << catalog::VmToJson(vm).dump(2);
  }
}

}  // namespace
}  // namespace sp::capture
