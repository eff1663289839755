// Tests of restore/: the export manifest parser (both versions), the warning for left-out
// mounted volumes, the definition of a new VM made from a point, and the import of an export
// written by the stillpoint before version 2 (with qemu-img and qemu-nbd, as import uses them).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "platform/fd.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "platform/process.h"
#include "repo/internal/format.h"
#include "restore/export.h"
#include "restore/restore.h"
#include "testing/temp_dir.h"

namespace sp::restore {
namespace {

using nlohmann::json;

json GoodManifest() {
  return {{"format", "stillpoint-export"},
          {"version", 1},
          {"point_id", "p1"},
          {"vm_id", "uuid-1"},
          {"vm_name", "web01"},
          {"name", "web01"},
          {"volumes", json::array({{{"name", "root"},
                                    {"file", "root.qcow2"},
                                    {"format", "qcow2"},
                                    {"size", 1048576},
                                    {"file_bytes", 200000},
                                    {"sha256", std::string(64, 'a')},
                                    {"boot", true}}})},
          {"extras", {{"consistency", "application"}}}};
}

TEST(ExportManifestTest, RoundTripsWritingTheCurrentVersion) {
  auto parsed = ParseExportManifest(GoodManifest().dump());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->version, 1);
  EXPECT_EQ(parsed->volumes.size(), 1u);
  EXPECT_TRUE(parsed->volumes[0].boot);
  EXPECT_EQ(parsed->point_description.consistency, repo::PointConsistency::kApplication);
  std::string encoded = EncodeExportManifest(*parsed);
  EXPECT_EQ(json::parse(encoded)["version"], kExportFormatVersion);
  EXPECT_FALSE(json::parse(encoded).contains("extras"));
  auto again = ParseExportManifest(encoded);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->version, 2);
  EXPECT_EQ(again->point_description, parsed->point_description);
  EXPECT_EQ(EncodeExportManifest(*again), encoded);
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
      {[](json& m) { m["volumes"][0]["file"] = "/etc/passwd"; }, absl::StatusCode::kInvalidArgument,
       "plain file name"},
      {[](json& m) { m["volumes"][0]["file"] = "stillpoint-export.json"; },
       absl::StatusCode::kInvalidArgument, "plain file name"},
      {[](json& m) { m["version"] = 3; }, absl::StatusCode::kFailedPrecondition, "newer"},
      {[](json& m) { m["version"] = "1"; }, absl::StatusCode::kInvalidArgument, "version"},
      {[](json& m) { m["volumes"][0]["size"] = -5; }, absl::StatusCode::kInvalidArgument, "size"},
      {[](json& m) { m["volumes"][0]["sha256"] = "XYZ"; }, absl::StatusCode::kInvalidArgument,
       "sha256"},
      {[](json& m) { m["volumes"].push_back(m["volumes"][0]); }, absl::StatusCode::kInvalidArgument,
       "twice"},
      {[](json& m) { m["volumes"] = json::array(); }, absl::StatusCode::kInvalidArgument,
       "non-empty"},
      {[](json& m) { m["format"] = "other"; }, absl::StatusCode::kInvalidArgument, "format"},
      {[](json& m) { m["volumes"][0]["format"] = "vmdk"; }, absl::StatusCode::kInvalidArgument,
       "qcow2 or raw"},
      // What it records about the point is checked as a manifest's is, and never throws.
      {[](json& m) {
         m["extras"]["vm"] = {{"vcpus", "4"}};
       },
       absl::StatusCode::kInvalidArgument,
       "export manifest: extras: field 'vm.vcpus' must be an integer, got string '4'"},
      {[](json& m) { m["extras"] = json::array(); }, absl::StatusCode::kInvalidArgument,
       "export manifest: extras: must be an object, got array"},
      {[](json& m) {
         m["extras"]["volumes"] = json::array({{{"name", "root"}, {"size", -1}}});
       },
       absl::StatusCode::kInvalidArgument, "field 'volumes[0].size' must be a non-negative"},
      {[](json& m) {
         m["version"] = 2;
         m["point_description"] = m["extras"];
         m.erase("extras");
       },
       absl::StatusCode::kInvalidArgument,
       "export manifest: point description: field 'reason' is missing"},
      {[](json& m) {
         m["version"] = 2;
         m.erase("extras");
       },
       absl::StatusCode::kInvalidArgument, "'point_description' is missing"},
  };
  for (const Case& c : cases) {
    json manifest = GoodManifest();
    c.edit(manifest);
    auto parsed = ParseExportManifest(manifest.dump());
    ASSERT_FALSE(parsed.ok()) << manifest.dump();
    EXPECT_EQ(parsed.status().code(), c.code) << parsed.status();
    EXPECT_NE(parsed.status().message().find(c.words), absl::string_view::npos) << parsed.status();
  }
  EXPECT_FALSE(ParseExportManifest("{\"format\": ").ok());
  EXPECT_FALSE(ParseExportManifest("[]").ok());
}

TEST(ExportManifestTest, WarnsAboutMountedVolumesLeftOut) {
  repo::PointDescription recorded;
  recorded.guest_filesystems = {{"/", "ext4", {"root"}}, {"/data", "ext4", {"data"}}};
  EXPECT_TRUE(LeftOutVolumes(recorded, {"root", "data"}, "the export").empty());
  auto warnings = LeftOutVolumes(recorded, {"root"}, "the export");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("/data (ext4), which the guest had mounted"), std::string::npos);
  EXPECT_TRUE(LeftOutVolumes(repo::PointDescription{}, {"root"}, "the export").empty());
  // Volumes of the VM without a mounted filesystem (e.g. a stopped VM's) are named too.
  repo::PointDescription stopped;
  stopped.vm = repo::PointVm{};
  stopped.vm->volumes = {{"root", "", "", true, "", ""}, {"swap", "", "", false, "", ""}};
  warnings = LeftOutVolumes(stopped, {"root"}, "recovery point p1");
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0],
            "volume 'swap' of the VM is not in recovery point p1: a VM made from it "
            "has no such disk");
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

// Writes `content` to a new file at `path`, leaving its zero runs of 64 KiB as holes when `sparse`.
void WriteImage(const std::string& path, const std::string& content, bool sparse) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_GE(fd.get(), 0);
  constexpr size_t kPiece = 64 << 10;
  for (size_t at = 0; at < content.size(); at += kPiece) {
    std::string piece = content.substr(at, kPiece);
    if (sparse && piece.find_first_not_of('\0') == std::string::npos) continue;
    ASSERT_TRUE(WriteAllAt(fd.get(), piece, at, path).ok());
  }
  ASSERT_EQ(::ftruncate(fd.get(), static_cast<off_t>(content.size())), 0);
  ASSERT_TRUE(fd.Close(path).ok());
}

TEST(HashFileTest, HolesHashAsTheZerosTheyReadAs) {
  sp::testing::TempDir temp;
  // Holes at the start, between data, and at the end; data in the last bytes of another case.
  std::string content(9u << 20, '\0');
  for (size_t i = 0; i < (1u << 20); ++i) content[(3u << 20) + i] = static_cast<char>(i * 7 + 1);
  content.replace(content.size() - (128 << 10), 5, "tail!");
  std::string ends_with_hole = content.substr(0, 8u << 20);
  for (const std::string& each : {content, ends_with_hole}) {
    std::string sparse = temp.path() + "/sparse";
    std::string dense = temp.path() + "/dense";
    std::filesystem::remove(sparse);
    std::filesystem::remove(dense);
    WriteImage(sparse, each, true);
    WriteImage(dense, each, false);
    struct stat info {};
    ASSERT_EQ(::stat(sparse.c_str(), &info), 0);
    EXPECT_LT(static_cast<uint64_t>(info.st_blocks) * 512, 2u << 20) << "the file has no holes";
    auto from_sparse = HashFile(sparse);
    auto from_dense = HashFile(dense);
    ASSERT_TRUE(from_sparse.ok()) << from_sparse.status();
    ASSERT_TRUE(from_dense.ok()) << from_dense.status();
    EXPECT_EQ(from_sparse->sha256, repo::DigestHex(repo::Sha256(each)));
    EXPECT_EQ(from_dense->sha256, from_sparse->sha256);
    EXPECT_EQ(from_sparse->size, each.size());
  }
  EXPECT_FALSE(HashFile(temp.path() + "/missing").ok());
}

// Reads the whole image at `path` (qcow2 or raw) as raw bytes, through qemu-img.
std::string ImageBytes(const std::string& path, const std::string& format, const std::string& dir) {
  std::string raw = dir + "/read-back.raw";
  std::filesystem::remove(raw);
  auto converted = RunCommandOk({"qemu-img", "convert", "-f", format, "-O", "raw", path, raw},
                                Deadline::In(Millis(60'000)));
  EXPECT_TRUE(converted.ok()) << converted.status();
  auto bytes = ReadFile(raw);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

// The allocated bytes of the image at `path` as qemu-img map sees them (data: true).
uint64_t MappedDataBytes(const std::string& path, const std::string& format) {
  auto map = RunCommandOk({"qemu-img", "map", "--output=json", "-f", format, path},
                          Deadline::In(Millis(60'000)));
  EXPECT_TRUE(map.ok()) << map.status();
  if (!map.ok()) return 0;
  uint64_t total = 0;
  for (const json& extent : json::parse(*map)) {
    if (extent.value("data", false)) total += extent["length"].get<uint64_t>();
  }
  return total;
}

TEST(MaterializeTest, ZeroClustersInsideAChunkStayUnallocated) {
  sp::testing::TempDir temp;
  repo::InitOptions init;
  init.chunk_size = 1 << 20;
  ASSERT_TRUE(repo::Repository::Init(temp.path() + "/repo", init).ok());
  auto repo = repo::Repository::Open(temp.path() + "/repo", repo::OpenOptions{});
  ASSERT_TRUE(repo.ok()) << repo.status();
  // Chunk 0: 64 KiB of data, zeros, 64 KiB of data at its end (as scattered writes leave a
  // formerly empty chunk); chunk 1: zeros; chunk 2: data throughout.
  std::string volume(3u << 20, '\0');
  for (size_t i = 0; i < (64u << 10); ++i) {
    volume[i] = static_cast<char>(i % 251 + 1);
    volume[(1u << 20) - (64u << 10) + i] = static_cast<char>(i % 13 + 1);
  }
  for (size_t i = 2u << 20; i < volume.size(); ++i) volume[i] = static_cast<char>(i % 7 + 1);
  repo::RecoveryPointRequest request;
  request.vm = repo::VmIdentity{"uuid-web01", "web01"};
  auto writer = (*repo)->BeginRecoveryPoint(request);
  ASSERT_TRUE(writer.ok()) << writer.status();
  auto out = (*writer)->AddVolume("root", volume.size());
  ASSERT_TRUE(out.ok()) << out.status();
  for (uint64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE((*out)->PutChunk(i, volume.substr(i << 20, 1u << 20)).ok());
  }
  repo::PointDescription description;
  description.consistency = repo::PointConsistency::kCrash;
  auto manifest = (*writer)->Commit(description);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  for (ImageFormat format : {ImageFormat::kQcow2, ImageFormat::kRaw}) {
    std::string name = ImageFormatName(format);
    std::string path = temp.path() + "/root." + name;
    auto stats = MaterializeVolume(**repo, manifest->id, "root", path, format);
    ASSERT_TRUE(stats.ok()) << name << ": " << stats.status();
    EXPECT_EQ(ImageBytes(path, name, temp.path()), volume) << name;
    // The two 64 KiB runs of chunk 0 and chunk 2: nothing of the zeros between them.
    EXPECT_EQ(MappedDataBytes(path, name), (128u << 10) + (1u << 20)) << name;
  }
}

TEST(DraftFromPointTest, NewIdentitySameShape) {
  repo::Manifest manifest;
  manifest.id = "p1";
  manifest.volumes = {{"root", 1 << 20, "", {}, 0, 0, 0, 0}, {"data", 2 << 20, "", {}, 0, 0, 0, 0}};
  repo::PointDescription& recorded = manifest.point_description;
  recorded.volumes = {{"root", 1 << 20, true, "qcow2", "sp-root", false, ""},
                      {"data", 2 << 20, false, "qcow2", "sp-data", false, ""}};
  recorded.vm = repo::PointVm{};
  recorded.vm->uuid = "old-uuid";
  recorded.vm->vcpus = 2;
  recorded.vm->memory_mib = 1024;
  recorded.vm->consistency_policy = "require-app";
  recorded.vm->kernel = repo::PointKernelBoot{"/k", "/i", "quiet"};
  recorded.vm->nics = {{"52:54:00:00:00:01", "user"}};
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
  EXPECT_EQ(draft->append, "quiet");
  ASSERT_EQ(draft->nics.size(), 1u);
  EXPECT_NE(draft->nics[0].mac, "52:54:00:00:00:01");
  EXPECT_EQ(draft->nics[0].network, "user");
  ASSERT_EQ(draft->volumes.size(), 2u);
  EXPECT_EQ(draft->volumes[0].path, "/imgs/copy/root.qcow2");
  EXPECT_TRUE(draft->volumes[0].boot);
  EXPECT_EQ(draft->volumes[1].serial, "sp-data");
  EXPECT_FALSE(draft->volumes[1].boot);
  EXPECT_EQ(BootVolumeName(manifest), "root");

  // (A configuration with a wrong type never gets this far: reading the manifest refuses it,
  // naming the field; see repo/point_description_test.cc.)
  repo::Manifest bare;
  bare.id = "p2";
  auto refused = DraftFromPoint(bare, "x", "/d", ImageFormat::kRaw,
                                [](const std::string&) -> StatusOr<bool> { return false; });
  EXPECT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_NE(refused.status().message().find("records no VM configuration"),
            absl::string_view::npos);
}

// Copies the export in tests/data/v1/export (written by the stillpoint before version 2, with
// "extras") to `dir`.
void CopyVersionOneExport(const std::string& dir) {
  std::filesystem::copy(std::string(SP_TEST_DATA_DIR) + "/v1/export", dir);
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::filesystem::permissions(entry.path(), std::filesystem::perms(0600));
  }
}

TEST(ImportTest, ImportsAnExportOfTheOlderFormatAndExportsItAgainInTheNewOne) {
  sp::testing::TempDir temp;
  std::string repo_dir = temp.path() + "/repo", old_export = temp.path() + "/old";
  repo::InitOptions init;
  init.chunk_size = 1 << 20;
  ASSERT_TRUE(repo::Repository::Init(repo_dir, init).ok());
  auto repo = repo::Repository::Open(repo_dir, repo::OpenOptions{});
  ASSERT_TRUE(repo.ok()) << repo.status();
  CopyVersionOneExport(old_export);

  auto imported = ImportPoint(**repo, old_export);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->manifest.version, 1);
  const repo::PointDescription& recorded = imported->point.point_description;
  EXPECT_EQ(recorded.consistency, repo::PointConsistency::kCrash);
  EXPECT_EQ(recorded.power_state, "defined");
  ASSERT_TRUE(recorded.vm.has_value());
  EXPECT_EQ(recorded.vm->memory_mib, 64);
  ASSERT_TRUE(recorded.imported.has_value());
  EXPECT_EQ(recorded.imported->from, old_export);
  EXPECT_EQ(recorded.imported->original_point_id, "20261203T161629Z-9b03e381");
  // Everything the old export recorded is kept.
  json extras = json::parse(*ReadFile(old_export + "/stillpoint-export.json"))["extras"];
  json kept = repo::EncodePointDescription(recorded);
  kept.erase("imported");
  EXPECT_EQ(kept, extras);
  auto stored = (*repo)->GetRecoveryPoint(imported->point_id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->point_description, recorded);
  EXPECT_EQ(BootVolumeName(*stored), "root");

  // Out again (version 2) and in again: the same description, but where it came from.
  ExportRequest request;
  request.point_id = imported->point_id;
  request.dir = temp.path() + "/new";
  request.format = ImageFormat::kRaw;
  auto exported = ExportPoint(**repo, request);
  ASSERT_TRUE(exported.ok()) << exported.status();
  json written = json::parse(*ReadFile(request.dir + "/stillpoint-export.json"));
  EXPECT_EQ(written["version"], 2);
  EXPECT_TRUE(written.contains("point_description"));
  EXPECT_FALSE(written.contains("extras"));
  auto again = ImportPoint(**repo, request.dir);
  ASSERT_TRUE(again.ok()) << again.status();
  repo::PointDescription round_trip = again->point.point_description;
  round_trip.imported = recorded.imported;
  EXPECT_EQ(round_trip, recorded);
  EXPECT_TRUE((*repo)->Verify("")->ok());
}

// A repository holding the v1 export's point (volumes root, 1 MiB, and data, 2 MiB).
class RenameFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo::InitOptions init;
    init.chunk_size = 1 << 20;
    ASSERT_TRUE(repo::Repository::Init(temp_.path() + "/repo", init).ok());
    auto repo = repo::Repository::Open(temp_.path() + "/repo", repo::OpenOptions{});
    ASSERT_TRUE(repo.ok()) << repo.status();
    repo_ = *std::move(repo);
    CopyVersionOneExport(temp_.path() + "/export");
    auto imported = ImportPoint(*repo_, temp_.path() + "/export");
    ASSERT_TRUE(imported.ok()) << imported.status();
    point_ = imported->point_id;
    ASSERT_TRUE(MakeDirs(temp_.path() + "/vm").ok());
  }

  std::string Digest(const std::string& path) {
    auto digest = HashFile(path);
    EXPECT_TRUE(digest.ok()) << path << ": " << digest.status();
    return digest.ok() ? digest->sha256 : "";
  }
  std::string Exported(const std::string& volume) {
    return Digest(temp_.path() + "/export/" + volume + ".raw");
  }
  // The names in the VM's image directory.
  std::set<std::string> VmFiles() {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(temp_.path() + "/vm")) {
      names.insert(entry.path().filename().string());
    }
    return names;
  }

  sp::testing::TempDir temp_;
  std::unique_ptr<repo::Repository> repo_;
  std::string point_;
};

TEST_F(RenameFaultTest, MaterializeWhoseFinalRenameFailsLeavesNothingBehind) {
  FaultInjectionFileSystem faulty(FileSystem::Posix());
  faulty.InjectError(FsOp::kRename, absl::UnavailableError("injected"), ".partial");
  for (ImageFormat format : {ImageFormat::kRaw, ImageFormat::kQcow2}) {
    std::string path = temp_.path() + "/vm/root." + ImageFormatName(format);
    auto made =
        MaterializeVolume(*repo_, point_, "root", path, format, nullptr, kOwnerFileMode, &faulty);
    EXPECT_TRUE(absl::IsUnavailable(made.status())) << made.status();
    EXPECT_TRUE(VmFiles().empty()) << ImageFormatName(format);
  }
  faulty.ClearFaults();
  std::string path = temp_.path() + "/vm/root.raw";
  auto made =
      MaterializeVolume(*repo_, point_, "root", path, ImageFormat::kRaw, nullptr, 0600, &faulty);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(Digest(path), Exported("root"));
  EXPECT_EQ(VmFiles(), std::set<std::string>{"root.raw"});
}

// A stopped VM with the point's two volumes, whose images hold something else.
class RestoreSwapTest : public RenameFaultTest {
 protected:
  void SetUp() override {
    RenameFaultTest::SetUp();
    vm_.name = "web01";
    vm_.state = catalog::PowerState::kStoppedClean;
    for (const auto& [name, size] : {std::pair<std::string, size_t>{"root", 1 << 20},
                                     std::pair<std::string, size_t>{"data", 2 << 20}}) {
      catalog::VolumeRecord volume;
      volume.name = name;
      volume.path = temp_.path() + "/vm/" + name + ".raw";
      volume.format = "raw";
      volume.boot = name == "root";
      ASSERT_TRUE(WriteFileAtomic(volume.path, std::string(size, name[0])).ok());
      old_[name] = Digest(volume.path);
      vm_.volumes.push_back(volume);
    }
  }

  // Restores with `fs` and expects it to fail, leaving both old images as they were.
  Status ExpectFailsKeepingTheOldImages(FileSystem* fs) {
    InPlaceRequest request;
    request.point_id = point_;
    request.fs = fs;
    auto restored = RestoreInPlace(*repo_, vm_, request);
    EXPECT_FALSE(restored.ok());
    for (const catalog::VolumeRecord& volume : vm_.volumes) {
      EXPECT_EQ(Digest(volume.path), old_[volume.name]) << volume.name;
    }
    return restored.status();
  }

  catalog::VmRecord vm_;
  std::map<std::string, std::string> old_;
};

TEST_F(RestoreSwapTest, ARenameFailingAtEachStepOfTheSwapKeepsTheOldImages) {
  const std::set<std::string> untouched = {"root.raw", "data.raw"};
  // Every rename of a restore, in order; each fails once in turn.
  const char* renames[] = {"root.raw.restoring.partial -> root.raw.restoring",
                           "data.raw.restoring.partial -> data.raw.restoring",
                           "root.raw -> root.raw.pre-restore",
                           "root.raw.restoring -> root.raw",
                           "data.raw -> data.raw.pre-restore",
                           "data.raw.restoring -> data.raw"};
  for (int skip = 0; skip < 6; ++skip) {
    SCOPED_TRACE(renames[skip]);
    FaultInjectionFileSystem faulty(FileSystem::Posix());
    faulty.InjectError(FsOp::kRename, absl::ResourceExhaustedError("injected"), "/vm/", skip, 1);
    Status failed = ExpectFailsKeepingTheOldImages(&faulty);
    EXPECT_TRUE(absl::IsResourceExhausted(failed)) << failed;
    EXPECT_EQ(VmFiles(), untouched);  // no .restoring, .pre-restore or .partial left
  }

  // Then it works, and only the new images are left.
  InPlaceRequest request;
  request.point_id = point_;
  auto restored = RestoreInPlace(*repo_, vm_, request);
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(Digest(vm_.volumes[0].path), Exported("root"));
  EXPECT_EQ(Digest(vm_.volumes[1].path), Exported("data"));
  EXPECT_EQ(VmFiles(), untouched);
}

TEST_F(RestoreSwapTest, AnOldImageThatCannotBePutBackIsKeptAndNamed) {
  // The new image does not go in, and the old one cannot be renamed back either.
  FaultInjectionFileSystem faulty(FileSystem::Posix());
  // (The first two renames from *.restoring.partial are the materializations.)
  faulty.InjectError(FsOp::kRename, absl::ResourceExhaustedError("injected"), ".restoring", 2, 1);
  faulty.InjectError(FsOp::kRename, absl::ResourceExhaustedError("injected"), ".pre-restore", 0, 1);
  InPlaceRequest request;
  request.point_id = point_;
  request.fs = &faulty;
  auto restored = RestoreInPlace(*repo_, vm_, request);
  ASSERT_FALSE(restored.ok());
  std::string root = vm_.volumes[0].path;
  EXPECT_NE(restored.status().message().find("the old image of " + root + " is kept at " + root +
                                             ".pre-restore"),
            absl::string_view::npos)
      << restored.status();
  EXPECT_EQ(Digest(root + ".pre-restore"), old_["root"]);
  EXPECT_EQ(Digest(vm_.volumes[1].path), old_["data"]);
}

}  // namespace
}  // namespace sp::restore
