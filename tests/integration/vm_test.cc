// The VM runtime against the real test guest under real QEMU (TCG) with the real guest agent.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_split.h"
#include "platform/files.h"
#include "qmp/qmp_client.h"
#include "tests/integration/guest.h"
#include "vm/command_line.h"

namespace sp {
namespace {

using catalog::PowerState;
using testing::Contains;
using testing::GuestEnv;
using testing::GuestWorld;

// Under TCG on a loaded 2-core machine the guest needs ~4 s to answer; allow much more.
constexpr Millis kBootTimeout{90'000};

class VmIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(GuestEnv().empty()) << "test guest unavailable"; }

  catalog::VmRecord StartGuest(const std::string& name) {
    auto vm = world_.DefineGuest(name);
    EXPECT_TRUE(vm.ok()) << vm.status();
    if (!vm.ok()) return {};
    Status started = world_.app().StartVm(name);
    EXPECT_TRUE(started.ok()) << started;
    return *world_.app().GetVm(name);
  }

  catalog::VmRecord WaitStopped(const catalog::VmRecord& vm) {
    auto stopped = world_.runtime().WaitUntilStopped(vm, Deadline::In(Millis(30'000)));
    EXPECT_TRUE(stopped.ok()) << stopped.status();
    return stopped.ok() ? *stopped : vm;
  }

  GuestWorld world_;
};

TEST_F(VmIntegrationTest, AgentAnswersMapsFilesystemsAndFreezesWithHookMarkers) {
  catalog::VmRecord vm = StartGuest("web01");
  ASSERT_EQ(vm.state, PowerState::kRunning);
  auto boot_ms = world_.WaitForAgent(vm, kBootTimeout);
  ASSERT_TRUE(boot_ms.ok()) << boot_ms.status();
  std::cerr << "agent answered " << *boot_ms << " ms after start\n";

  auto filesystems = world_.app().GuestFilesystems("web01", Millis(10'000));
  ASSERT_TRUE(filesystems.ok()) << filesystems.status();
  std::map<std::string, std::vector<std::string>> by_mountpoint;
  for (const auto& fs : *filesystems) by_mountpoint[fs.mountpoint] = fs.volumes;
  EXPECT_EQ(by_mountpoint["/"], std::vector<std::string>{"root"});
  EXPECT_EQ(by_mountpoint["/data"], std::vector<std::string>{"data"});

  auto agent = world_.runtime().ConnectAgent(vm);
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto info = (*agent)->Info(Millis(10'000));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version, GuestEnv().at("GUEST_QGA_VERSION"));
  EXPECT_TRUE(info->Supports("guest-fsfreeze-freeze"));

  auto frozen = (*agent)->Freeze(Millis(20'000));
  ASSERT_TRUE(frozen.ok()) << frozen.status();
  // Thaw on every path, even if an assertion below fails.
  auto thaw_guard = absl::MakeCleanup([&] { (void)(*agent)->Thaw(Millis(20'000)); });
  EXPECT_GE(*frozen, 2);
  EXPECT_EQ(*(*agent)->FreezeStatus(Millis(10'000)), qga::FreezeState::kFrozen);
  auto exec_while_frozen = (*agent)->Exec("/bin/true", {}, false, Millis(10'000));
  EXPECT_TRUE(Contains(exec_while_frozen.status().message(), "frozen state"))
      << exec_while_frozen.status();
  auto thawed = (*agent)->Thaw(Millis(20'000));
  ASSERT_TRUE(thawed.ok()) << thawed.status();
  EXPECT_EQ(*thawed, *frozen);
  EXPECT_EQ(*(*agent)->FreezeStatus(Millis(10'000)), qga::FreezeState::kThawed);

  auto markers = (*agent)->Run("/bin/cat", {GuestEnv().at("GUEST_HOOK_LOG")}, Millis(20'000));
  ASSERT_TRUE(markers.ok()) << markers.status();
  std::vector<std::string> lines = absl::StrSplit(markers->out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 2u) << markers->out;
  EXPECT_TRUE(absl::StartsWith(lines[0], "freeze ")) << markers->out;
  EXPECT_TRUE(absl::StartsWith(lines[1], "thaw ")) << markers->out;
}

TEST_F(VmIntegrationTest, GuestShutdownIsRecordedAsStoppedClean) {
  catalog::VmRecord vm = StartGuest("web01");
  ASSERT_TRUE(world_.WaitForAgent(vm, kBootTimeout).ok());
  auto stop = world_.Cli({"vm", "stop", "web01", "--timeout", "90"});
  ASSERT_TRUE(stop.ok()) << stop.status();
  EXPECT_EQ(stop->status.code, 0) << stop->output;
  catalog::VmRecord stopped = *world_.app().GetVm("web01");
  EXPECT_EQ(stopped.state, PowerState::kStoppedClean) << stopped.state_reason;
  EXPECT_TRUE(Contains(stopped.state_reason, "guest-shutdown")) << stopped.state_reason;
  auto events = world_.catalog().ListEvents(stopped.id);
  ASSERT_TRUE(events.ok());
  ASSERT_FALSE(events->empty());
  EXPECT_EQ(events->front().kind, "vm.stopped");
}

TEST_F(VmIntegrationTest, QmpQuitIsRecordedAsStoppedDirtyWithReason) {
  catalog::VmRecord vm = StartGuest("web01");
  auto qmp = world_.runtime().ConnectQmp(vm);
  ASSERT_TRUE(qmp.ok()) << qmp.status();
  (void)(*qmp)->Execute("quit");
  catalog::VmRecord stopped = WaitStopped(vm);
  EXPECT_EQ(stopped.state, PowerState::kStoppedDirty);
  EXPECT_TRUE(Contains(stopped.state_reason, "host-qmp-quit")) << stopped.state_reason;
}

TEST_F(VmIntegrationTest, KillNineAndSigtermAreRecordedAsStoppedDirty) {
  catalog::VmRecord vm = StartGuest("web01");
  auto pid = world_.runtime().QemuPid(vm);
  ASSERT_TRUE(pid.ok()) << pid.status();
  ASSERT_TRUE(SendSignal(*pid, SIGKILL).ok());
  catalog::VmRecord killed = WaitStopped(vm);
  EXPECT_EQ(killed.state, PowerState::kStoppedDirty);
  EXPECT_TRUE(Contains(killed.state_reason, "SIGKILL")) << killed.state_reason;

  ASSERT_TRUE(world_.app().StartVm("web01").ok());
  pid = world_.runtime().QemuPid(vm);
  ASSERT_TRUE(pid.ok());
  ASSERT_TRUE(SendSignal(*pid, SIGTERM).ok());
  catalog::VmRecord terminated = WaitStopped(vm);
  EXPECT_EQ(terminated.state, PowerState::kStoppedDirty);
  EXPECT_TRUE(Contains(terminated.state_reason, "host-signal")) << terminated.state_reason;
}

TEST_F(VmIntegrationTest, AgentThatDoesNotRunTimesOutWithinItsDeadline) {
  // A VM whose disk boots nothing: QEMU serves the agent channel, but no agent ever answers.
  std::string blank = world_.dir() + "/blank.qcow2";
  ASSERT_TRUE(RunCommandOk({"qemu-img", "create", "-q", "-f", "qcow2", blank, "64M"},
                           Deadline::In(Millis(30'000)))
                  .ok());
  catalog::VmRecord draft;
  draft.name = "silent";
  draft.memory_mib = 128;
  draft.volumes = {{"root", blank, "", true, "", "", -1}};
  auto vm = world_.app().DefineVm(draft);
  ASSERT_TRUE(vm.ok()) << vm.status();
  ASSERT_TRUE(world_.app().StartVm("silent").ok());
  auto agent = world_.runtime().ConnectAgent(*vm);
  ASSERT_TRUE(agent.ok()) << agent.status();
  auto start = std::chrono::steady_clock::now();
  Status ping = (*agent)->Ping(Millis(2000));
  double waited = MillisSince(start);
  EXPECT_EQ(ping.code(), absl::StatusCode::kDeadlineExceeded) << ping;
  EXPECT_GE(waited, 1990);
  EXPECT_LT(waited, 4000);
  EXPECT_TRUE(Contains(ping.message(), "guest-ping")) << ping;
  EXPECT_TRUE(Contains(ping.message(), "silent")) << ping;

  auto cli = world_.Cli({"vm", "agent", "ping", "silent", "--timeout", "1"});
  ASSERT_TRUE(cli.ok());
  EXPECT_EQ(cli->status.code, 5) << cli->output;
  EXPECT_TRUE(Contains(cli->output, "did not answer guest-ping within 1000 ms")) << cli->output;
}

TEST_F(VmIntegrationTest, BadInputGetsClearErrorsAndChangesNothing) {
  catalog::VmRecord vm = StartGuest("web01");
  auto cli = [&](std::vector<std::string> args) {
    auto result = world_.Cli(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{};
  };
  std::string root = vm.volumes[0].path;
  std::string other = world_.CopyImage("GUEST_DATA_IMAGE", "other.qcow2");

  auto duplicate = cli({"vm", "define", "web01", "--volume", "name=r,path=" + other + ",boot"});
  EXPECT_EQ(duplicate.status.code, 6) << duplicate.output;
  EXPECT_TRUE(Contains(duplicate.output, "already exists")) << duplicate.output;

  auto missing = cli({"vm", "define", "web02", "--volume", "name=r,path=/nonexistent.qcow2,boot"});
  EXPECT_EQ(missing.status.code, 3) << missing.output;
  EXPECT_TRUE(Contains(missing.output, "does not exist")) << missing.output;

  auto two_boot = cli({"vm", "define", "web02", "--volume", "name=a,path=" + other + ",boot",
                       "--volume", "name=b,path=" + other + ",boot"});
  EXPECT_EQ(two_boot.status.code, 2) << two_boot.output;
  auto no_boot = cli({"vm", "define", "web02", "--volume", "name=a,path=" + other});
  EXPECT_EQ(no_boot.status.code, 2) << no_boot.output;
  EXPECT_TRUE(Contains(no_boot.output, "boot volume")) << no_boot.output;

  auto locked = cli({"vm", "define", "web02", "--volume", "name=r,path=" + root + ",boot"});
  EXPECT_EQ(locked.status.code, 4) << locked.output;
  EXPECT_TRUE(Contains(locked.output, "in use by another process")) << locked.output;

  auto again = cli({"vm", "start", "web01"});
  EXPECT_EQ(again.status.code, 4) << again.output;
  EXPECT_TRUE(Contains(again.output, "already running")) << again.output;

  auto remove_running = cli({"vm", "remove", "web01"});
  EXPECT_EQ(remove_running.status.code, 4) << remove_running.output;

  auto unknown = cli({"vm", "show", "nosuchvm"});
  EXPECT_EQ(unknown.status.code, 3) << unknown.output;
  EXPECT_TRUE(Contains(unknown.output, "vm list")) << unknown.output;

  auto listed = cli({"vm", "list", "--json"});
  ASSERT_EQ(listed.status.code, 0) << listed.output;
  auto vms = nlohmann::json::parse(listed.output);
  ASSERT_EQ(vms.size(), 1u);  // none of the refused definitions was added
  EXPECT_EQ(vms[0]["state"], "running");

  auto killed = cli({"vm", "kill", "web01"});
  EXPECT_EQ(killed.status.code, 0) << killed.output;
  auto stop_stopped = cli({"vm", "stop", "web01"});
  EXPECT_EQ(stop_stopped.status.code, 4) << stop_stopped.output;
  EXPECT_TRUE(Contains(stop_stopped.output, "not running")) << stop_stopped.output;

  // A run directory too long for unix sockets is refused with advice, before anything starts.
  std::string long_run = world_.dir() + "/" + std::string(100, 'r');
  auto too_long =
      RunCommand({"env", "STILLPOINT_HOME=" + world_.paths().home, "STILLPOINT_RUN_DIR=" + long_run,
                  testing::StillpointBinary(), "vm", "start", "web01"},
                 Deadline::In(Millis(30'000)));
  ASSERT_TRUE(too_long.ok());
  EXPECT_EQ(too_long->status.code, 2) << too_long->output;
  EXPECT_TRUE(Contains(too_long->output, "STILLPOINT_RUN_DIR")) << too_long->output;
  EXPECT_EQ(world_.app().GetVm("web01")->state, PowerState::kStoppedDirty);
}

TEST_F(VmIntegrationTest, UsageErrorsSayWhatToDoAndImagePathsMayHoldCommas) {
  auto cli = [&](std::vector<std::string> args) {
    auto result = world_.Cli(args);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{};
  };
  std::string image = world_.CopyImage("GUEST_ROOT_IMAGE", "a,b.qcow2");
  auto vcpus =
      cli({"vm", "define", "web01", "--volume", "name=r,path=/x.qcow2,boot", "--vcpus", "two"});
  EXPECT_EQ(vcpus.status.code, 2) << vcpus.output;
  EXPECT_EQ(vcpus.output,
            "stillpoint: error: --vcpus: 'two' is not a whole number (see "
            "`stillpoint vm define --help`)\n");
  auto missing = cli({"vm", "define", "web01"});
  EXPECT_EQ(missing.status.code, 2) << missing.output;
  EXPECT_TRUE(Contains(missing.output, "stillpoint: error: --volume is required"))
      << missing.output;

  auto cut = cli({"vm", "define", "web01", "--volume", "name=r,path=" + image + ",boot"});
  EXPECT_EQ(cut.status.code, 2) << cut.output;
  EXPECT_TRUE(Contains(cut.output, "unknown part 'b.qcow2'")) << cut.output;
  EXPECT_TRUE(Contains(cut.output, "quote")) << cut.output;
  auto quoted = cli({"vm", "define", "web01", "--volume", "name=r,path=\"" + image + "\",boot"});
  ASSERT_EQ(quoted.status.code, 0) << quoted.output;
  auto vm = world_.app().GetVm("web01");
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(vm->volumes[0].path, image);
}

TEST_F(VmIntegrationTest, AttachDiscoversDisksOfAQemuStartedElsewhere) {
  // Start QEMU the way another tool would: our own command line, outside stillpoint's runtime.
  catalog::VmRecord other;
  other.name = "ext";
  other.uuid = "7d2a1c3e-5f60-4a1b-9c2d-0e1f2a3b4c5d";
  other.memory_mib = 256;
  other.kernel = GuestEnv().at("GUEST_KERNEL");
  other.initrd = GuestEnv().at("GUEST_INITRD");
  other.append = GuestEnv().at("GUEST_APPEND");
  other.volumes = {{"disk0", world_.CopyImage("GUEST_ROOT_IMAGE", "ext-root.qcow2"), "qcow2", true,
                    "sp-root", "disk0-fmt", 4},
                   {"disk1", world_.CopyImage("GUEST_DATA_IMAGE", "ext-data.qcow2"), "qcow2", false,
                    "sp-data", "disk1-fmt", 5}};
  auto paths = vm::RunPathsFor(other, world_.dir() + "/ext");
  ASSERT_TRUE(paths.ok());
  ASSERT_TRUE(MakeDirs(paths->dir).ok());
  SpawnOptions spawn;
  spawn.stdout_path = paths->qemu_log;
  spawn.stderr_path = paths->qemu_log;
  auto qemu =
      Spawn(vm::BuildQemuCommandLine(other, *paths, vm::QemuOptions::FromEnvironment()), spawn);
  ASSERT_TRUE(qemu.ok()) << qemu.status();
  auto reap = absl::MakeCleanup([&] {
    (void)SendSignal(*qemu, SIGKILL);
    (void)WaitChild(*qemu, Deadline::In(Millis(10'000)));
  });
  // Wait until QEMU listens (its socket file appears a moment before).
  Deadline deadline = Deadline::In(Millis(30'000));
  while (!qmp::Client::Connect(paths->qmp_socket, "ext", Millis(2000)).ok() &&
         !deadline.Expired()) {
    std::this_thread::sleep_for(Millis(20));
  }

  auto attached = world_.Cli(
      {"vm", "attach", "ext01", "--qmp", paths->qmp_socket, "--qga", paths->qga_socket, "--json"});
  ASSERT_TRUE(attached.ok());
  ASSERT_EQ(attached->status.code, 0) << attached->output;
  auto vm = world_.app().GetVm("ext01");
  ASSERT_TRUE(vm.ok()) << vm.status();
  EXPECT_EQ(vm->origin, "attached");
  EXPECT_EQ(vm->uuid, other.uuid);
  ASSERT_EQ(vm->volumes.size(), 2u);
  EXPECT_EQ(vm->volumes[0].name, "disk0");
  EXPECT_EQ(vm->volumes[0].node_name, "disk0-fmt");
  EXPECT_EQ(vm->volumes[0].path, other.volumes[0].path);
  EXPECT_EQ(vm->volumes[0].format, "qcow2");
  EXPECT_EQ(vm->volumes[0].serial, "sp-root");
  EXPECT_TRUE(vm->volumes[0].boot);
  EXPECT_EQ(vm->volumes[1].node_name, "disk1-fmt");
  EXPECT_EQ(vm->state, PowerState::kRunning);
  auto agent_ms = world_.WaitForAgent(*vm, kBootTimeout);
  EXPECT_TRUE(agent_ms.ok()) << agent_ms.status();
  auto start = world_.Cli({"vm", "start", "ext01"});
  EXPECT_EQ(start->status.code, 4) << start->output;
  EXPECT_TRUE(Contains(start->output, "attached")) << start->output;

  // The guest powers itself off while nothing of stillpoint's watches: how it stopped is not
  // known, so the VM is "stopped", not "stopped-dirty"; its disks' journals then tell.
  {
    auto agent = world_.runtime().ConnectAgent(*vm);
    ASSERT_TRUE(agent.ok()) << agent.status();
    ASSERT_TRUE((*agent)->Sync(Millis(5000)).ok());
    ASSERT_TRUE((*agent)->Shutdown("powerdown").ok());
  }
  auto ended = WaitChild(*qemu, Deadline::In(Millis(60'000)));
  ASSERT_TRUE(ended.ok() && ended->has_value()) << "the guest did not power off";
  auto stopped = world_.app().GetVm("ext01");
  ASSERT_TRUE(stopped.ok()) << stopped.status();
  EXPECT_EQ(stopped->state, PowerState::kStopped) << stopped->state_reason;
  EXPECT_TRUE(Contains(stopped->state_reason, "not known")) << stopped->state_reason;
  auto point = world_.Cli({"snapshot", "create", "ext01", "--json"});
  ASSERT_EQ(point->status.code, 0) << point->output;
  EXPECT_TRUE(Contains(point->output, "\"power_state\": \"stopped\"")) << point->output;
  EXPECT_TRUE(Contains(point->output, "journal(s) are clean")) << point->output;
}

}  // namespace
}  // namespace sp
