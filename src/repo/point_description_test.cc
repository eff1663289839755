// The typed description of a recovery point: round trips, the looser version-1 layout, and a
// table of stored descriptions that must be refused with the right code and the field named.
#include "repo/point_description.h"

#include <functional>

#include "gtest/gtest.h"

namespace sp::repo {
namespace {

using nlohmann::json;

PointDescription Full() {
  PointDescription d;
  d.consistency = PointConsistency::kApplication;
  d.reason = "2 filesystem(s) frozen by guest agent 7.2.22";
  d.power_state = "running";
  d.policy = "prefer-app";
  d.agent_version = "7.2.22";
  d.incremental = true;
  d.notes = {"data: first snapshot: full"};
  d.timings = {1.5, 2.25, 30.125, 0.75, 0.5, 4, 36.5, 1234.0625};
  d.bytes = {3u << 20, 1u << 20};
  d.volumes = {{"root", 1u << 20, true, "qcow2", "sp-root", true, "stillpoint-p1"},
               {"data", 2u << 20, false, "raw", "sp-data", false, ""}};
  d.guest_filesystems = {{"/", "ext4", {"root"}}, {"/data", "ext4", {"data"}}};
  d.ext4 = {{"root", "whole volume", 0, "ext4", "rootfs", "0b6c-...", false}};
  PointVm vm;
  vm.catalog_id = 3;
  vm.uuid = "46eae26a-5fb2-46d1-913e-c1243c338691";
  vm.name = "web01";
  vm.origin = "attached";
  vm.state = "running";
  vm.state_reason = "attached while running";
  vm.state_changed = "2026-11-22T04:43:45.000000Z";
  vm.created = "2026-11-22T04:40:00.000000Z";
  vm.vcpus = 2;
  vm.memory_mib = 1024;
  vm.firmware = "uefi";
  vm.guest_agent = true;
  vm.consistency_policy = "require-app";
  vm.kernel = PointKernelBoot{"/k", "/i", "quiet"};
  vm.qmp_socket = "/run/web01.qmp";
  vm.qga_socket = "";
  vm.space_limit_bytes = 10LL << 30;
  vm.volumes = {{"root", "/imgs/root.qcow2", "qcow2", true, "sp-root", "root-fmt"},
                {"swap", "/imgs/swap.raw", "raw", false, "sp-swap", "swap-fmt"}};
  vm.nics = {{"52:54:00:00:00:01", "user"}};
  d.vm = vm;
  d.imported = PointImport{"/mnt/share/export", "20261122T044345Z-17333e01",
                           "2026-11-22T04:43:45.000000Z", "2026-11-23T10:00:00.000000Z"};
  return d;
}

TEST(PointDescriptionTest, RoundTripsEveryField) {
  for (const PointDescription& original : {Full(), PointDescription{}}) {
    json encoded = EncodePointDescription(original);
    auto decoded = DecodePointDescription(encoded, "recovery point p1");
    ASSERT_TRUE(decoded.ok()) << decoded.status() << "\n" << encoded.dump(2);
    EXPECT_EQ(*decoded, original);
    EXPECT_EQ(EncodePointDescription(*decoded), encoded);
    // Through text as it is stored.
    auto reread = DecodePointDescription(json::parse(encoded.dump()), "recovery point p1");
    ASSERT_TRUE(reread.ok()) << reread.status();
    EXPECT_EQ(*reread, original);
  }
}

TEST(PointDescriptionTest, KeepsTheKeysVersionOneRecorded) {
  json encoded = EncodePointDescription(Full());
  for (const char* key :
       {"consistency", "reason", "power_state", "policy", "agent_version", "incremental", "notes",
        "timings_ms", "bytes", "volumes", "guest_filesystems", "ext4", "vm", "imported"}) {
    EXPECT_TRUE(encoded.contains(key)) << key;
  }
  EXPECT_EQ(encoded["timings_ms"]["frozen_window"], 36.5);
  EXPECT_EQ(encoded["vm"]["guest_agent"], true);
  EXPECT_EQ(encoded["vm"]["kernel"]["append"], "quiet");
  EXPECT_TRUE(encoded["vm"].contains("qmp_socket"));
  PointDescription managed = Full();
  managed.vm->qmp_socket.reset();
  managed.vm->qga_socket.reset();
  managed.vm->kernel.reset();
  managed.vm->space_limit_bytes.reset();
  json vm = EncodePointDescription(managed)["vm"];
  EXPECT_FALSE(vm.contains("qmp_socket"));
  EXPECT_FALSE(vm.contains("kernel"));
  EXPECT_TRUE(vm.contains("space_limit_bytes") && vm["space_limit_bytes"].is_null());
}

TEST(PointDescriptionTest, FindsVolumesByName) {
  PointDescription d = Full();
  ASSERT_NE(d.FindVolume("data"), nullptr);
  EXPECT_EQ(d.FindVolume("data")->serial, "sp-data");
  EXPECT_EQ(d.FindVolume("swap"), nullptr);
  ASSERT_NE(d.vm->FindVolume("swap"), nullptr);
  EXPECT_EQ(d.vm->FindVolume("swap")->path, "/imgs/swap.raw");
}

TEST(PointDescriptionTest, VersionOneExtrasMayLackAnyField) {
  auto bare = DecodePointDescription(json::object(), "recovery point p1",
                                     DescriptionLayout::kVersion1Extras);
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ(*bare, PointDescription{});
  EXPECT_EQ(bare->consistency, PointConsistency::kUnknown);
  EXPECT_FALSE(bare->vm.has_value());

  json partial = {{"consistency", "crash"},
                  {"vm", {{"vcpus", 2}, {"volumes", json::array({{{"name", "root"}}})}}},
                  {"timings_ms", {{"freeze", 12.5}}},
                  {"freeze_ms", 12.5}};  // a key no version knows: ignored
  auto read =
      DecodePointDescription(partial, "recovery point p1", DescriptionLayout::kVersion1Extras);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->consistency, PointConsistency::kCrash);
  EXPECT_EQ(read->timings.freeze_ms, 12.5);
  ASSERT_TRUE(read->vm.has_value());
  EXPECT_EQ(read->vm->vcpus, 2);
  EXPECT_EQ(read->vm->memory_mib, 512);  // the default a VM made from it gets, as before
  EXPECT_EQ(read->vm->nics, std::vector<PointNic>{});
  ASSERT_EQ(read->vm->volumes.size(), 1u);
  // What it reads is written again in the current layout, which reads it back the same.
  auto again = DecodePointDescription(EncodePointDescription(*read), "recovery point p1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *read);

  // The looser layout still checks what is there.
  auto mistyped = DecodePointDescription({{"vm", {{"vcpus", "4"}}}}, "recovery point p1",
                                         DescriptionLayout::kVersion1Extras);
  EXPECT_TRUE(absl::IsDataLoss(mistyped.status())) << mistyped.status();
  EXPECT_EQ(mistyped.status().message(),
            "recovery point p1: field 'vm.vcpus' must be an integer, got string '4'");
}

struct BadCase {
  std::function<void(json&)> edit;
  std::string message;  // after "recovery point p1: "
};

TEST(PointDescriptionTest, RefusesMistypedMissingAndImpossibleFieldsNamingThem) {
  const std::vector<BadCase> cases = {
      {[](json& d) { d["vm"]["vcpus"] = "4"; },
       "field 'vm.vcpus' must be an integer, got string '4'"},
      {[](json& d) { d["vm"]["vcpus"] = 0; }, "field 'vm.vcpus' must be from 1 to 1024, got 0"},
      {[](json& d) { d["vm"]["vcpus"] = 100000; },
       "field 'vm.vcpus' must be from 1 to 1024, got 100000"},
      {[](json& d) { d["vm"]["vcpus"] = 18446744073709551615u; },
       "field 'vm.vcpus' must be from 1 to 1024, got 18446744073709551615"},
      {[](json& d) { d["vm"]["memory_mib"] = 1.5; },
       "field 'vm.memory_mib' must be an integer, got 1.5"},
      {[](json& d) { d["vm"]["guest_agent"] = "yes"; },
       "field 'vm.guest_agent' must be true or false, got string 'yes'"},
      {[](json& d) { d["vm"]["kernel"] = "/k"; },
       "field 'vm.kernel' must be an object, got string '/k'"},
      {[](json& d) { d["vm"]["kernel"]["append"] = 3; },
       "field 'vm.kernel.append' must be a string, got 3"},
      {[](json& d) { d["vm"]["nics"] = json::object(); },
       "field 'vm.nics' must be an array, got object"},
      {[](json& d) { d["vm"]["nics"][0]["mac"] = 5; },
       "field 'vm.nics[0].mac' must be a string, got 5"},
      {[](json& d) { d["vm"]["nics"][0] = "user"; },
       "field 'vm.nics[0]' must be an object, got string 'user'"},
      {[](json& d) { d["vm"]["space_limit_bytes"] = -1; },
       "field 'vm.space_limit_bytes' must be from 0 to 9223372036854775807, got -1"},
      {[](json& d) { d["vm"].erase("uuid"); }, "field 'vm.uuid' is missing"},
      {[](json& d) { d["vm"]["volumes"][1]["name"] = ""; },
       "field 'vm.volumes[1].name' must not be empty"},
      {[](json& d) { d["vm"] = json::array(); }, "field 'vm' must be an object, got array"},
      {[](json& d) { d["volumes"][0]["size"] = -5; },
       "field 'volumes[0].size' must be a non-negative integer, got -5"},
      {[](json& d) { d["volumes"][0]["size"] = "1M"; },
       "field 'volumes[0].size' must be a non-negative integer, got string '1M'"},
      {[](json& d) { d["volumes"][0]["boot"] = "true"; },
       "field 'volumes[0].boot' must be true or false, got string 'true'"},
      {[](json& d) { d["volumes"][1].erase("name"); }, "field 'volumes[1].name' is missing"},
      {[](json& d) { d["volumes"] = json::object(); },
       "field 'volumes' must be an array, got object"},
      {[](json& d) { d.erase("volumes"); }, "field 'volumes' is missing"},
      {[](json& d) { d.erase("consistency"); }, "field 'consistency' is missing"},
      {[](json& d) { d["consistency"] = "bogus"; },
       "field 'consistency' must be one of application, crash, unknown, got 'bogus'"},
      {[](json& d) { d["power_state"] = "asleep"; },
       "field 'power_state' must be one of defined, running, stopped-clean, stopped-dirty, "
       "stopped, unknown, got 'asleep'"},
      {[](json& d) { d["policy"] = 3; }, "field 'policy' must be a string, got 3"},
      {[](json& d) { d["incremental"] = 1; }, "field 'incremental' must be true or false, got 1"},
      {[](json& d) { d["notes"] = "x"; },
       "field 'notes' must be an array of strings, got string 'x'"},
      {[](json& d) { d["notes"][0] = json::object(); },
       "field 'notes[0]' must be a string, got object"},
      {[](json& d) { d["timings_ms"]["freeze"] = -1; },
       "field 'timings_ms.freeze' must not be negative, got -1"},
      {[](json& d) { d["timings_ms"]["freeze"] = "fast"; },
       "field 'timings_ms.freeze' must be a number, got string 'fast'"},
      {[](json& d) { d["bytes"].erase("read"); }, "field 'bytes.read' is missing"},
      {[](json& d) { d["guest_filesystems"][0]["volumes"][0] = 7; },
       "field 'guest_filesystems[0].volumes[0]' must be a string, got 7"},
      {[](json& d) { d["ext4"][0]["offset"] = -4096; },
       "field 'ext4[0].offset' must be a non-negative integer, got -4096"},
      {[](json& d) { d["imported"]["from"] = 1; }, "field 'imported.from' must be a string, got 1"},
      {[](json& d) { d = json::array(); }, "must be an object, got array"},
  };
  const json good = EncodePointDescription(Full());
  for (const BadCase& c : cases) {
    json stored = good;
    c.edit(stored);
    auto decoded = DecodePointDescription(stored, "recovery point p1");
    ASSERT_FALSE(decoded.ok()) << c.message;
    EXPECT_TRUE(absl::IsDataLoss(decoded.status())) << decoded.status();
    EXPECT_EQ(decoded.status().message(), "recovery point p1: " + c.message);
  }
}

TEST(PointDescriptionTest, OptionalPartsMayBeAbsentOrNull) {
  json stored = EncodePointDescription(Full());
  stored.erase("imported");
  stored["vm"].erase("kernel");
  stored["vm"]["qga_socket"] = nullptr;
  auto decoded = DecodePointDescription(stored, "recovery point p1");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_FALSE(decoded->imported.has_value());
  EXPECT_FALSE(decoded->vm->kernel.has_value());
  EXPECT_FALSE(decoded->vm->qga_socket.has_value());
  stored.erase("vm");
  decoded = DecodePointDescription(stored, "recovery point p1");
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_FALSE(decoded->vm.has_value());
}

}  // namespace
}  // namespace sp::repo
