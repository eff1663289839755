#include "vm/machine.h"

#include <gtest/gtest.h>

#include <set>

#include "platform/process.h"
#include "testing/temp_dir.h"

namespace sp::vm {
namespace {

class DefinitionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"root", "data"}) {
      auto made = RunCommandOk(
          {"qemu-img", "create", "-q", "-f", "qcow2", dir_.path() + "/" + name + ".qcow2", "16M"},
          Deadline::In(Millis(30'000)));
      ASSERT_TRUE(made.ok()) << made.status();
    }
    vm_.name = "web01";
    vm_.uuid = NewUuid();
    vm_.volumes = {{"root", dir_.path() + "/root.qcow2", "", true, "", "", -1},
                   {"data", dir_.path() + "/data.qcow2", "", false, "", "", -1}};
  }
  sp::testing::TempDir dir_;
  catalog::VmRecord vm_;
};

TEST_F(DefinitionTest, FillsInFormatsSerialsNodesAndSlots) {
  ASSERT_TRUE(ValidateDefinition(&vm_).ok());
  EXPECT_EQ(vm_.volumes[0].format, "qcow2");
  EXPECT_EQ(vm_.volumes[0].serial, "sp-root");
  EXPECT_EQ(vm_.volumes[1].node_name, "data-fmt");
  EXPECT_NE(vm_.volumes[0].pci_slot, vm_.volumes[1].pci_slot);
}

TEST_F(DefinitionTest, RefusesBadInputWithAdvice) {
  struct Case {
    const char* what;
    std::function<void(catalog::VmRecord*)> change;
    absl::StatusCode code;
    const char* says;
  };
  std::vector<Case> cases = {
      {"no boot volume", [](auto* vm) { vm->volumes[0].boot = false; },
       absl::StatusCode::kInvalidArgument, "exactly one volume must be the boot volume"},
      {"two boot volumes", [](auto* vm) { vm->volumes[1].boot = true; },
       absl::StatusCode::kInvalidArgument, "2 are marked boot"},
      {"missing image", [](auto* vm) { vm->volumes[1].path = "/nonexistent/x.qcow2"; },
       absl::StatusCode::kNotFound, "does not exist"},
      {"wrong format", [](auto* vm) { vm->volumes[1].format = "raw"; },
       absl::StatusCode::kInvalidArgument, "is qcow2"},
      {"bad name", [](auto* vm) { vm->name = "web 01/x"; }, absl::StatusCode::kInvalidArgument,
       "must start with a letter"},
      {"duplicate volume", [](auto* vm) { vm->volumes[1].name = "root"; },
       absl::StatusCode::kInvalidArgument, "two volumes are named"},
      {"multicast MAC",
       [](auto* vm) {
         vm->nics = {{"53:54:00:00:00:01", "user"}};
       },
       absl::StatusCode::kInvalidArgument, "locally administered"},
      {"global MAC",
       [](auto* vm) {
         vm->nics = {{"00:16:3e:00:00:01", "user"}};
       },
       absl::StatusCode::kInvalidArgument, "locally administered"},
      {"bad policy", [](auto* vm) { vm->policy = "sometimes"; }, absl::StatusCode::kInvalidArgument,
       "require-app"},
  };
  for (const Case& test : cases) {
    catalog::VmRecord vm = vm_;
    test.change(&vm);
    Status status = ValidateDefinition(&vm);
    EXPECT_EQ(status.code(), test.code) << test.what << ": " << status;
    EXPECT_NE(std::string(status.message()).find(test.says), std::string::npos)
        << test.what << ": " << status;
  }
}

TEST(MacTest, GeneratedMacsAreLocalUnicastAndAvoidTakenOnes) {
  std::set<std::string> taken;
  for (int i = 0; i < 200; ++i) {
    auto mac =
        GenerateMac([&](const std::string& m) -> StatusOr<bool> { return taken.count(m) > 0; });
    ASSERT_TRUE(mac.ok());
    EXPECT_TRUE(IsValidLocalMac(*mac)) << *mac;
    EXPECT_TRUE(taken.insert(*mac).second) << *mac;
  }
  EXPECT_FALSE(IsValidLocalMac("52:54:00:00:00"));
  EXPECT_FALSE(IsValidLocalMac("52:54:00:00:00:0g"));
}

TEST(RunPathsTest, TooLongSocketPathIsRefusedWithAdvice) {
  catalog::VmRecord vm;
  vm.name = "web01";
  vm.uuid = NewUuid();
  auto paths = RunPathsFor(vm, "/tmp/" + std::string(120, 'r'));
  EXPECT_EQ(paths.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(paths.status().message()).find("STILLPOINT_RUN_DIR"), std::string::npos);
  EXPECT_TRUE(RunPathsFor(vm, "/tmp/run").ok());
}

}  // namespace
}  // namespace sp::vm
