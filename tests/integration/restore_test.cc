// Using recovery points on the real guest under real QEMU (TCG): a new VM from a point boots with
// the point's data and a new identity, restore in place (and its refusals and failures), export
// and import into a second state directory, tampered exports, and serving a volume over NBD.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "platform/files.h"
#include "restore/materialize.h"
#include "testing/scoped_umask.h"
#include "tests/integration/guest.h"

namespace sp {
namespace {

using testing::Contains;
using testing::GuestEnv;
using testing::GuestWorld;

constexpr Millis kBootTimeout{90'000};

std::string Hash(const std::string& path) {
  auto digest = restore::HashFile(path);
  EXPECT_TRUE(digest.ok()) << digest.status();
  return digest.ok() ? digest->sha256 : "";
}

// Arms a fault point (STILLPOINT_FAULT_AT) for the commands run in its scope.
class Fault {
 public:
  explicit Fault(const char* name) { ::setenv("STILLPOINT_FAULT_AT", name, 1); }
  ~Fault() { ::unsetenv("STILLPOINT_FAULT_AT"); }
};

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(GuestEnv().empty()) << "test guest unavailable"; }

  catalog::VmRecord Boot(GuestWorld& world, const std::string& name) {
    auto vm = world.BootGuest(name, kBootTimeout);
    EXPECT_TRUE(vm.ok()) << vm.status();
    return vm.ok() ? *vm : catalog::VmRecord{};
  }

  // Runs a shell command in the guest; expects it to succeed and returns its trimmed output.
  std::string Guest(GuestWorld& world, const std::string& vm_name, const std::string& command) {
    auto vm = world.app().GetVm(vm_name);
    EXPECT_TRUE(vm.ok()) << vm.status();
    if (!vm.ok()) return "";
    auto run = world.Shell(*vm, command);
    EXPECT_TRUE(run.ok()) << run.status();
    if (!run.ok()) return "";
    EXPECT_EQ(run->exit_code, 0) << command << ": " << run->err;
    return std::string(absl::StripAsciiWhitespace(run->out));
  }

  // Writes 3 MiB of random data to /data/file in the guest; returns its sha256.
  std::string WriteData(GuestWorld& world, const std::string& vm) {
    std::string hash = Guest(world, vm,
                             "dd if=/dev/urandom of=/data/file bs=1M count=3 "
                             "2>/dev/null && sync && sha256sum /data/file | cut -c1-64");
    EXPECT_EQ(hash.size(), 64u) << hash;
    return hash;
  }

  std::string Snapshot(GuestWorld& world, const std::string& vm) {
    capture::CaptureRequest request;
    request.vm = vm;
    auto result = world.app().CreateSnapshot(request, nullptr);
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->point_id : "";
  }

  void Stop(GuestWorld& world, const std::string& vm) {
    Status stopped = world.app().StopVm(vm, Millis(60'000));
    ASSERT_TRUE(stopped.ok()) << stopped;
  }

  CommandResult Cli(GuestWorld& world, const std::vector<std::string>& args) {
    auto result = world.Cli(args, Millis(300'000));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *result : CommandResult{};
  }

  size_t PointCount(GuestWorld& world) {
    auto repo = world.app().Repo();
    auto points = (*repo)->ListRecoveryPoints();
    return points.ok() ? points->size() : 0;
  }

  // Starts `stillpoint snapshot mount` of `volume` on `socket` and waits until it serves.
  StatusOr<pid_t> StartMount(const std::string& point, const std::string& volume,
                             const std::string& socket) {
    SpawnOptions options;
    options.stdout_path = world_.dir() + "/mount.log";
    SP_ASSIGN_OR_RETURN(pid_t pid, Spawn({"env", "STILLPOINT_HOME=" + world_.paths().home,
                                          "STILLPOINT_RUN_DIR=" + world_.paths().run_root,
                                          testing::StillpointBinary(), "snapshot", "mount", point,
                                          "--volume", volume, "--socket", socket},
                                         options));
    Deadline deadline = Deadline::In(Millis(60'000));
    while (!PathExists(socket) && !deadline.Expired()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (PathExists(socket)) return pid;
    auto log = ReadFile(options.stdout_path);
    return absl::DeadlineExceededError("mount did not serve: " + (log.ok() ? *log : ""));
  }

  GuestWorld world_;
};

TEST_F(RestoreTest, NewVmFromSnapshotBootsWithTheDataAndANewIdentity) {
  catalog::VmRecord original = Boot(world_, "web01");
  std::string hash = WriteData(world_, "web01");
  std::string point = Snapshot(world_, "web01");
  ASSERT_FALSE(point.empty());

  CommandResult made =
      Cli(world_, {"vm", "create-from-snapshot", point, "--name", "copy", "--start"});
  ASSERT_TRUE(made.status.success()) << made.output;
  auto copy = world_.app().GetVm("copy");
  ASSERT_TRUE(copy.ok()) << copy.status();
  ASSERT_TRUE(world_.WaitForAgent(*copy, kBootTimeout).ok());
  EXPECT_EQ(Guest(world_, "copy", "sha256sum /data/file | cut -c1-64"), hash);

  EXPECT_NE(copy->uuid, original.uuid);
  ASSERT_EQ(copy->nics.size(), original.nics.size());
  for (size_t i = 0; i < copy->nics.size(); ++i) EXPECT_NE(copy->nics[i].mac, original.nics[i].mac);
  for (const auto& volume : copy->volumes) {
    EXPECT_TRUE(Contains(volume.path, "/images/copy/")) << volume.path;
    EXPECT_EQ(volume.format, "qcow2");
  }
  // Only allocated data was written: the images are far smaller than the volumes.
  auto root_size = FileSize(copy->BootVolume()->path);
  ASSERT_TRUE(root_size.ok());
  EXPECT_LT(*root_size, 128ull << 20);
  // The original is untouched and still running with its own data.
  EXPECT_EQ(Guest(world_, "web01", "sha256sum /data/file | cut -c1-64"), hash);
  EXPECT_EQ(world_.app().GetVm("web01")->state, catalog::PowerState::kRunning);

  CommandResult again = Cli(world_, {"vm", "create-from-snapshot", point, "--name", "copy"});
  EXPECT_EQ(again.status.code, 6) << again.output;  // the name is taken
}

TEST_F(RestoreTest, RestoreInPlaceRefusesRunningFailsCleanlyAndRoundTrips) {
  catalog::VmRecord vm = Boot(world_, "web01");
  std::string before = WriteData(world_, "web01");
  std::string point = Snapshot(world_, "web01");
  ASSERT_FALSE(point.empty());

  CommandResult refused = Cli(world_, {"vm", "restore", "web01", point});
  EXPECT_EQ(refused.status.code, 4) << refused.output;
  EXPECT_TRUE(Contains(refused.output, "is running")) << refused.output;

  std::string after = WriteData(world_, "web01");
  ASSERT_NE(before, after);
  Stop(world_, "web01");
  std::string root_hash = Hash(vm.volumes[0].path), data_hash = Hash(vm.volumes[1].path);

  for (const char* fault : {"restore.volume-written:fail", "restore.swapped-one:fail"}) {
    Fault injected(fault);
    CommandResult failed = Cli(world_, {"vm", "restore", "web01", point});
    EXPECT_FALSE(failed.status.success()) << fault << ": " << failed.output;
    EXPECT_TRUE(Contains(failed.output, "fault injected")) << failed.output;
    EXPECT_EQ(Hash(vm.volumes[0].path), root_hash) << fault;
    EXPECT_EQ(Hash(vm.volumes[1].path), data_hash) << fault;
    for (const auto& volume : vm.volumes) {
      EXPECT_FALSE(PathExists(volume.path + ".restoring")) << fault;
      EXPECT_FALSE(PathExists(volume.path + ".pre-restore")) << fault;
    }
  }
  Boot(world_, "web01");
  EXPECT_EQ(Guest(world_, "web01", "sha256sum /data/file | cut -c1-64"), after);
  Stop(world_, "web01");

  CommandResult restored = Cli(world_, {"vm", "restore", "web01", point});
  ASSERT_TRUE(restored.status.success()) << restored.output;
  Boot(world_, "web01");
  EXPECT_EQ(Guest(world_, "web01", "sha256sum /data/file | cut -c1-64"), before);
}

TEST_F(RestoreTest, ExportImportIntoAnotherStateDirectoryMakesABootableVm) {
  Boot(world_, "web01");
  std::string hash = WriteData(world_, "web01");
  std::string point = Snapshot(world_, "web01");
  ASSERT_FALSE(point.empty());
  std::string dir = world_.dir() + "/share/export";
  CommandResult exported = Cli(world_, {"snapshot", "export", point, dir});
  ASSERT_TRUE(exported.status.success()) << exported.output;
  EXPECT_TRUE(PathExists(dir + "/stillpoint-export.json"));

  // Leaving out the data volume, which the guest had mounted, is warned about.
  CommandResult partial = Cli(world_, {"snapshot", "export", point, world_.dir() + "/partial",
                                       "--volume", "root", "--format", "raw"});
  ASSERT_TRUE(partial.status.success()) << partial.output;
  EXPECT_TRUE(Contains(partial.output, "warning: volume 'data'")) << partial.output;

  GuestWorld other;
  CommandResult imported = Cli(other, {"snapshot", "import", dir});
  ASSERT_TRUE(imported.status.success()) << imported.output;
  auto points = (*other.app().Repo())->ListRecoveryPoints();
  ASSERT_TRUE(points.ok() && points->size() == 1u);
  EXPECT_EQ((*points)[0].point_description.consistency, repo::PointConsistency::kApplication);
  ASSERT_TRUE((*points)[0].point_description.imported.has_value());
  EXPECT_EQ((*points)[0].point_description.imported->original_point_id, point);
  CommandResult listed = Cli(other, {"snapshot", "list"});
  EXPECT_TRUE(Contains(listed.output, (*points)[0].id)) << listed.output;

  CommandResult made =
      Cli(other, {"vm", "create-from-snapshot", (*points)[0].id, "--name", "moved", "--start"});
  ASSERT_TRUE(made.status.success()) << made.output;
  auto moved = other.app().GetVm("moved");
  ASSERT_TRUE(moved.ok());
  ASSERT_TRUE(other.WaitForAgent(*moved, kBootTimeout).ok());
  EXPECT_EQ(Guest(other, "moved", "sha256sum /data/file | cut -c1-64"), hash);
}

// Rewrites the export manifest in `dir` with `edit`.
void EditManifest(const std::string& dir, const std::function<void(nlohmann::json&)>& edit) {
  std::string path = dir + "/stillpoint-export.json";
  nlohmann::json manifest = nlohmann::json::parse(*ReadFile(path));
  edit(manifest);
  ASSERT_TRUE(WriteFileAtomic(path, manifest.dump(2)).ok());
}

TEST_F(RestoreTest, TamperedExportsAreRefusedAndNothingIsAdded) {
  ASSERT_TRUE(world_.DefineGuest("web01").ok());
  std::string point = Snapshot(world_, "web01");  // of the stopped VM
  ASSERT_FALSE(point.empty());
  std::string good = world_.dir() + "/good";
  ASSERT_TRUE(Cli(world_, {"snapshot", "export", point, good, "--format", "raw"}).status.success());

  struct Case {
    std::string name;
    std::function<void(const std::string& dir)> tamper;
    std::string expected;
  };
  std::vector<Case> cases = {
      {"flipped-byte",
       [](const std::string& dir) {
         std::fstream file(dir + "/data.raw", std::ios::in | std::ios::out | std::ios::binary);
         file.seekp(1 << 20);
         file.put('\x5a');
       },
       "does not match its checksum"},
      {"missing-file", [](const std::string& dir) { ::unlink((dir + "/data.raw").c_str()); },
       "is missing"},
      {"escaping-path",
       [](const std::string& dir) {
         EditManifest(dir, [](nlohmann::json& m) { m["volumes"][1]["file"] = "../data.raw"; });
       },
       "not a plain file name"},
      {"wrong-size",
       [](const std::string& dir) {
         EditManifest(dir, [](nlohmann::json& m) {
           m["volumes"][1]["size"] = m["volumes"][1]["size"].get<uint64_t>() * 2;
         });
       },
       "virtual size"},
      {"truncated",
       [](const std::string& dir) { ASSERT_EQ(::truncate((dir + "/data.raw").c_str(), 4096), 0); },
       "truncated"},
      {"future-version",
       [](const std::string& dir) {
         EditManifest(dir,
                      [](nlohmann::json& m) { m["version"] = restore::kExportFormatVersion + 1; });
       },
       "newer stillpoint"},
      {"symlinked-manifest",
       [this](const std::string& dir) {
         // The manifest points outside the export, at a copy of the real one.
         std::string outside = world_.dir() + "/outside.json";
         ASSERT_EQ(::rename((dir + "/stillpoint-export.json").c_str(), outside.c_str()), 0);
         ASSERT_EQ(::symlink(outside.c_str(), (dir + "/stillpoint-export.json").c_str()), 0);
       },
       "is not a regular file (a symbolic link)"},
      {"extra-file",
       [](const std::string& dir) { ASSERT_TRUE(WriteFileAtomic(dir + "/evil.raw", "x").ok()); },
       "not listed in the manifest"},
  };
  GuestWorld other;
  for (const Case& c : cases) {
    std::string dir = world_.dir() + "/" + c.name;
    ASSERT_TRUE(
        RunCommandOk({"cp", "-r", "--sparse=always", good, dir}, Deadline::In(Millis(60'000)))
            .ok());
    c.tamper(dir);
    CommandResult result = Cli(other, {"snapshot", "import", dir});
    EXPECT_FALSE(result.status.success()) << c.name;
    EXPECT_TRUE(Contains(result.output, c.expected)) << c.name << ": " << result.output;
    EXPECT_EQ(PointCount(other), 0u) << c.name;
  }
  CommandResult imported = Cli(other, {"snapshot", "import", good});
  EXPECT_TRUE(imported.status.success()) << imported.output;
  EXPECT_EQ(PointCount(other), 1u);
}

TEST_F(RestoreTest, ImagesAndExportsAreTheOwnersOnlyUnlessAskedWhateverTheUmask) {
  testing::ScopedUmask open_umask(0);  // the CLI inherits it: the modes must come from the code
  ASSERT_TRUE(world_.DefineGuest("web01").ok());
  std::string point = Snapshot(world_, "web01");
  ASSERT_FALSE(point.empty());
  std::string images = world_.dir() + "/shared/images";
  CommandResult made =
      Cli(world_, {"vm", "create-from-snapshot", point, "--name", "copy", "--dir", images});
  ASSERT_TRUE(made.status.success()) << made.output;
  EXPECT_EQ(testing::ModeOf((world_.dir() + "/shared").c_str()), 0700u);
  EXPECT_EQ(testing::ModeOf(images.c_str()), 0700u);
  for (const char* image : {"/root.qcow2", "/data.qcow2"}) {
    EXPECT_EQ(testing::ModeOf((images + image).c_str()), 0600u) << image;
  }
  std::string exported = world_.dir() + "/share/private";
  ASSERT_TRUE(
      Cli(world_, {"snapshot", "export", point, exported, "--format", "raw"}).status.success());
  EXPECT_EQ(testing::ModeOf(exported.c_str()), 0700u);
  for (const char* file : {"/root.raw", "/data.raw", "/stillpoint-export.json"}) {
    EXPECT_EQ(testing::ModeOf((exported + file).c_str()), 0600u) << file;
  }
  std::string group = world_.dir() + "/share/group";
  ASSERT_TRUE(Cli(world_, {"snapshot", "export", point, group, "--mode", "0640"}).status.success());
  EXPECT_EQ(testing::ModeOf(group.c_str()), 0750u);
  for (const char* file : {"/root.qcow2", "/data.qcow2", "/stillpoint-export.json"}) {
    EXPECT_EQ(testing::ModeOf((group + file).c_str()), 0640u) << file;
  }
  CommandResult executable =
      Cli(world_, {"snapshot", "export", point, world_.dir() + "/x", "--mode", "0755"});
  EXPECT_EQ(executable.status.code, 2) << executable.output;
  EXPECT_FALSE(PathExists(world_.dir() + "/x"));
  // Nothing in the repository is readable by anyone but its owner.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(world_.paths().repo)) {
    EXPECT_EQ(testing::ModeOf(entry.path().c_str()) & 077u, 0u) << entry.path();
  }
}

TEST_F(RestoreTest, PointWithoutAVolumeSaysSoAndShowIsReadable) {
  ASSERT_TRUE(world_.DefineGuest("web01").ok());
  capture::CaptureRequest request;
  request.vm = "web01";
  request.volumes = {"root"};
  auto taken = world_.app().CreateSnapshot(request, nullptr);
  ASSERT_TRUE(taken.ok()) << taken.status();
  std::string point = taken->point_id;

  CommandResult made = Cli(world_, {"vm", "create-from-snapshot", point, "--name", "copy"});
  ASSERT_TRUE(made.status.success()) << made.output;
  EXPECT_TRUE(Contains(made.output,
                       "stillpoint: warning: volume 'data' of the VM is not in "
                       "recovery point " +
                           point))
      << made.output;
  EXPECT_EQ(world_.app().GetVm("copy")->volumes.size(), 1u);
  CommandResult json =
      Cli(world_, {"vm", "create-from-snapshot", point, "--name", "copy2", "--json"});
  ASSERT_TRUE(json.status.success()) << json.output;
  EXPECT_TRUE(Contains(json.output, "\"warnings\": [\n    \"volume 'data' of the VM"))
      << json.output;

  CommandResult shown = Cli(world_, {"snapshot", "show", point.substr(0, 20)});
  ASSERT_TRUE(shown.status.success()) << shown.output;
  EXPECT_NE(shown.output.front(), '{') << shown.output;
  for (const char* line : {"state:         complete", "consistency:   ", "power state:   ",
                           "kind:          full", "size:          ", "VOLUME"}) {
    EXPECT_TRUE(Contains(shown.output, line)) << line << "\n" << shown.output;
  }
  CommandResult shown_json = Cli(world_, {"snapshot", "show", point, "--json"});
  ASSERT_TRUE(shown_json.status.success()) << shown_json.output;
  auto parsed = nlohmann::json::parse(shown_json.output, nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << shown_json.output;
  EXPECT_EQ(parsed.value("id", ""), point);
  EXPECT_TRUE(parsed.contains("consistency"));
}

// Pids of the children of `parent`.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> children;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto stat = ReadFile(entry.path().string() + "/stat");
    if (!stat.ok()) continue;
    size_t close_paren = stat->rfind(')');
    if (close_paren == std::string::npos) continue;
    std::vector<std::string> fields = absl::StrSplit(stat->substr(close_paren + 2), ' ');
    if (fields.size() > 1 && fields[1] == std::to_string(parent)) {
      children.push_back(static_cast<pid_t>(std::stol(entry.path().filename().string())));
    }
  }
  return children;
}

TEST_F(RestoreTest, KilledMountTakesItsNbdServerWithIt) {
  ASSERT_TRUE(world_.DefineGuest("web01").ok());
  std::string point = Snapshot(world_, "web01");
  ASSERT_FALSE(point.empty());
  auto pid = StartMount(point, "root", world_.dir() + "/k.sock");
  ASSERT_TRUE(pid.ok()) << pid.status();
  std::vector<pid_t> servers = ChildrenOf(*pid);
  ASSERT_EQ(servers.size(), 1u);
  ASSERT_TRUE(ProcessAlive(servers[0]));
  ASSERT_TRUE(SendSignal(*pid, SIGKILL).ok());
  ASSERT_TRUE(WaitChild(*pid, Deadline::In(Millis(10'000))).ok());
  Deadline gone = Deadline::In(Millis(10'000));
  while (ProcessAlive(servers[0]) && !gone.Expired()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(ProcessAlive(servers[0])) << "nbdkit outlived the killed `snapshot mount`";
  if (ProcessAlive(servers[0])) (void)SendSignal(servers[0], SIGKILL);
}

TEST_F(RestoreTest, MountedVolumeReadsAsThePointAndRefusesWrites) {
  Boot(world_, "web01");
  WriteData(world_, "web01");
  std::string point = Snapshot(world_, "web01");
  ASSERT_FALSE(point.empty());
  std::string socket = world_.dir() + "/m.sock";
  auto pid = StartMount(point, "data", socket);
  ASSERT_TRUE(pid.ok()) << pid.status();
  std::string uri = "nbd+unix:///data?socket=" + socket;
  std::string copy = world_.dir() + "/mounted.raw";
  ASSERT_TRUE(RunCommandOk({"qemu-img", "convert", "-f", "raw", "-O", "raw", uri, copy},
                           Deadline::In(Millis(120'000)))
                  .ok());
  std::string expected = world_.dir() + "/expected.raw";
  auto repo = world_.app().Repo();
  ASSERT_TRUE(
      restore::MaterializeVolume(**repo, point, "data", expected, restore::ImageFormat::kRaw).ok());
  EXPECT_EQ(Hash(copy), Hash(expected));
  auto write =
      RunCommand({"qemu-io", "-f", "raw", "-c", "write 0 512", uri}, Deadline::In(Millis(30'000)));
  ASSERT_TRUE(write.ok());
  EXPECT_FALSE(write->status.success()) << write->output;  // a read-only export
  ASSERT_TRUE(SendSignal(*pid, SIGTERM).ok());
  auto ended = WaitChild(*pid, Deadline::In(Millis(30'000)));
  ASSERT_TRUE(ended.ok() && ended->has_value());
  EXPECT_TRUE((*ended)->success()) << (*ended)->Describe();
  EXPECT_FALSE(PathExists(socket));
}

}  // namespace
}  // namespace sp
