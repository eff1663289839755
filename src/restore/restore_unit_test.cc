// Hermetic tests of restore/: the export manifest parser, the warning for left-out mounted
// volumes, and the definition of a new VM made from a point.
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "restore/export.h"
#include "restore/restore.h"

namespace sp::restore {
namespace {

using nlohmann::json;

json GoodManifest() {
  return {{"format", "stillpoint-export"}, {"version", 1}, {"point_id", "p1"},
          {"vm_id", "uuid-1"}, {"vm_name", "web01"}, {"name", "web01"},
          {"volumes", json::array({{{"name", "root"}, {"file", "root.qcow2"},
                                    {"format", "qcow2"}, {"size", 1048576},
                                    {"file_bytes", 200000}, {"sha256", std::string(64, 'a')},
                                    {"boot", true}}})},
          {"extras", {{"consistency", "application"}}}};
}

TEST(ExportManifestTest, RoundTrips) {
  auto parsed = ParseExportManifest(GoodManifest().dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->volumes.size(), 1u);
  EXPECT_TRUE(parsed->volumes[0].boot);
  auto again = ParseExportManifest(EncodeExportManifest(*parsed));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(EncodeExportManifest(*again), EncodeExportManifest(*parsed));
}

TEST(ExportManifestTest, RefusesWhatCouldHurt) {
  struct Case {
    std::function<void(json&)> edit;
    absl::StatusCode code;
    std::string words;
  };
  std::vector<Case> cases = {
      {[](json& m) { m["volumes"][0]["file"] = "../root.qcow2"; },
       absl::StatusCode::kInvalidArgument, "plain file name"},
      {[](json& m) { m["volumes"][0]["file"] = "/etc/passwd"; },
       absl::StatusCode::kInvalidArgument, "plain file name"},
      {[](json& m) { m["volumes"][0]["file"] = "stillpoint-export.json"; },
       absl::StatusCode::kInvalidArgument, "plain file name"},
      {[](json& m) { m["version"] = 2; }, absl::StatusCode::kFailedPrecondition, "newer"},
      {[](json& m) { m["version"] = "1"; }, absl::StatusCode::kInvalidArgument, "version"},
      {[](json& m) { m["volumes"][0]["size"] = -5; }, absl::StatusCode::kInvalidArgument, "size"},
      {[](json& m) { m["volumes"][0]["sha256"] = "XYZ"; }, absl::StatusCode::kInvalidArgument,
       "sha256"},
      {[](json& m) { m["volumes"].push_back(m["volumes"][0]); },
       absl::StatusCode::kInvalidArgument, "twice"},
      {[](json& m) { m["volumes"] = json::array(); }, absl::StatusCode::kInvalidArgument,
       "non-empty"},
      {[](json& m) { m["format"] = "other"; }, absl::StatusCode::kInvalidArgument, "format"},
      {[](json& m) { m["volumes"][0]["format"] = "vmdk"; }, absl::StatusCode::kInvalidArgument,
       "qcow2 or raw"},
  };
  for (const Case& c : cases) {
    json manifest = GoodManifest();
    c.edit(manifest);
    auto parsed = ParseExportManifest(manifest.dump());
    ASSERT_FALSE(parsed.ok()) << manifest.dump();
    EXPECT_EQ(parsed.status().code(), c.code) << parsed.status();
    EXPECT_NE(parsed.status().message().find(c.words), absl::string_view::npos)
        << parsed.status();
  }
  EXPECT_FALSE(ParseExportManifest("{\"format\": ").ok());
  EXPECT_FALSE(ParseExportManifest("[]").ok());
}

TEST(ExportManifestTest, WarnsAboutMountedVolumesLeftOut) {
  json extras = {{"guest_filesystems",
                  json::array({{{"mountpoint", "/"}, {"type", "ext4"}, {"volumes", {"root"}}},
                               {{"mountpoint", "/data"}, {"type", "ext4"},
                                {"volumes", {"data"}}}})}};
  EXPECT_TRUE(LeftOutVolumes(extras, {"root", "data"}, "the export").empty());
  auto warnings = LeftOutVolumes(extras, {"root"}, "the export");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("/data (ext4), which the guest had mounted"), std::string::npos);
  EXPECT_TRUE(LeftOutVolumes(json::object(), {"root"}, "the export").empty());
  // Volumes of the VM without a mounted filesystem (e.g. a stopped VM's) are named too.
  json stopped = {{"vm", {{"volumes", json::array({{{"name", "root"}}, {{"name", "swap"}}})}}}};
  warnings = LeftOutVolumes(stopped, {"root"}, "recovery point p1");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0], "volume 'swap' of the VM is not in recovery point p1: a VM made from it "
                         "has no such disk");
  // A malformed record gives no warning rather than an error.
  EXPECT_TRUE(LeftOutVolumes({{"guest_filesystems", json::array({{{"volumes", 7}}})}}, {"root"},
                             "the export").empty());
}

TEST(ExportModeTest, OctalWithOwnerReadWriteAndNoExecute) {
  EXPECT_EQ(*ParseExportMode("0600"), 0600u);
  EXPECT_EQ(*ParseExportMode("640"), 0640u);
  EXPECT_EQ(*ParseExportMode("0644"), 0644u);
  for (const char* bad : {"", "rw-r-----", "0700", "0400", "0648", "10600", "0x180", "0641"}) {
    auto parsed = ParseExportMode(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
    EXPECT_NE(parsed.status().message().find("e.g. 06"), absl::string_view::npos)
        << parsed.status();
  }
}

TEST(DraftFromPointTest, NewIdentitySameShape) {
  repo::Manifest manifest;
  manifest.id = "p1";
  manifest.volumes = {{"root", 1 << 20, "", {}, 0, 0, 0, 0}, {"data", 2 << 20, "", {}, 0, 0, 0, 0}};
  manifest.extras = {
      {"volumes", json::array({{{"name", "root"}, {"boot", true}, {"serial", "sp-root"}},
                               {{"name", "data"}, {"boot", false}, {"serial", "sp-data"}}})},
      {"vm", {{"uuid", "old-uuid"}, {"vcpus", 2}, {"memory_mib", 1024}, {"firmware", "bios"},
              {"guest_agent", true}, {"consistency_policy", "require-app"},
              {"kernel", {{"kernel", "/k"}, {"initrd", "/i"}, {"append", "quiet"}}},
              {"nics", json::array({{{"mac", "52:54:00:00:00:01"}, {"network", "user"}}})}}}};
  std::set<std::string> seen;
  auto draft = DraftFromPoint(manifest, "copy", "/imgs/copy", ImageFormat::kQcow2,
                              [&](const std::string& mac) -> StatusOr<bool> {
                                seen.insert(mac);
                                return false;
                              });
  ASSERT_TRUE(draft.ok()) << draft.status();
  EXPECT_EQ(draft->name, "copy");
  EXPECT_NE(draft->uuid, "old-uuid");
  EXPECT_EQ(draft->vcpus, 2);
  EXPECT_EQ(draft->memory_mib, 1024);
  EXPECT_EQ(draft->policy, "require-app");
  EXPECT_EQ(draft->kernel, "/k");
  ASSERT_EQ(draft->nics.size(), 1u);
  EXPECT_NE(draft->nics[0].mac, "52:54:00:00:00:01");
  EXPECT_EQ(draft->nics[0].network, "user");
  ASSERT_EQ(draft->volumes.size(), 2u);
  EXPECT_EQ(draft->volumes[0].path, "/imgs/copy/root.qcow2");
  EXPECT_TRUE(draft->volumes[0].boot);
  EXPECT_EQ(draft->volumes[1].serial, "sp-data");
  EXPECT_FALSE(draft->volumes[1].boot);

  // A configuration with a wrong type is an error naming the field, never an exception.
  struct Bad {
    std::function<void(json&)> edit;
    std::string words;
  };
  std::vector<Bad> bad = {
      {[](json& vm) { vm["vcpus"] = "4"; }, "'vcpus' must be an integer, not string"},
      {[](json& vm) { vm["vcpus"] = 0; }, "'vcpus' out of range"},
      {[](json& vm) { vm["memory_mib"] = 1.5; }, "'memory_mib' must be an integer"},
      {[](json& vm) { vm["guest_agent"] = "yes"; }, "'guest_agent' must be true or false"},
      {[](json& vm) { vm["kernel"] = "/k"; }, "'kernel' must be an object"},
      {[](json& vm) { vm["kernel"]["append"] = 3; }, "'append' must be a string"},
      {[](json& vm) { vm["nics"] = json::object(); }, "'nics' must be an array"},
      {[](json& vm) { vm["nics"][0]["mac"] = 5; }, "'mac' must be a string"},
      {[](json& vm) { vm["nics"][0] = "user"; }, "a NIC is not an object"},
  };
  for (const Bad& c : bad) {
    repo::Manifest broken = manifest;
    c.edit(broken.extras["vm"]);
    auto refused = DraftFromPoint(broken, "x", "/d", ImageFormat::kRaw,
                                  [](const std::string&) -> StatusOr<bool> { return false; });
    EXPECT_TRUE(absl::IsDataLoss(refused.status())) << refused.status();
    EXPECT_NE(refused.status().message().find(c.words), absl::string_view::npos)
        << refused.status();
    EXPECT_NE(refused.status().message().find("recovery point p1"), absl::string_view::npos);
  }
  repo::Manifest wrong_volume = manifest;
  wrong_volume.extras["volumes"][0]["boot"] = "true";
  EXPECT_TRUE(absl::IsDataLoss(DraftFromPoint(wrong_volume, "x", "/d", ImageFormat::kRaw,
                                              [](const std::string&) -> StatusOr<bool> {
                                                return false;
                                              }).status()));

  repo::Manifest bare;
  bare.id = "p2";
  EXPECT_EQ(DraftFromPoint(bare, "x", "/d", ImageFormat::kRaw,
                           [](const std::string&) -> StatusOr<bool> { return false; })
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sp::restore
