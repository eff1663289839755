#include "cli/repo_commands.h"

#include <cstdlib>

#include "catalog/catalog.h"
#include "catalog/recovery_points.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repo/repository.h"
#include "testing/temp_dir.h"

namespace sp::cli {
namespace {

using ::testing::HasSubstr;

// Parses `args` as the command line and runs the selected action, as main() does.
Status RunCommand(std::vector<std::string> args) {
  Context context;
  CLI::App root("stillpoint");
  root.require_subcommand(1);
  RegisterRepoCommands(root, context);
  std::vector<const char*> argv = {"stillpoint"};
  for (const auto& arg : args) argv.push_back(arg.c_str());
  try {
    root.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& error) {
    return absl::InvalidArgumentError(error.what());
  }
  return context.action ? context.action() : absl::OkStatus();
}

class RepoCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override { ::setenv("STILLPOINT_HOME", dir_.path().c_str(), 1); }
  std::string Repo() const { return dir_.path() + "/repo"; }
  sp::testing::TempDir dir_;
};

TEST_F(RepoCommandsTest, InitInfoStatsVerifyGc) {
  ASSERT_TRUE(
      RunCommand({"repo", "init", Repo(), "--chunk-size", "1M", "--compression", "zstd:1"}).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(RunCommand({"repo", "init", Repo()})));
  EXPECT_TRUE(RunCommand({"repo", "info", "--repo", Repo()}).ok());
  EXPECT_TRUE(RunCommand({"repo", "stats", "--repo", Repo(), "--json"}).ok());
  EXPECT_TRUE(RunCommand({"repo", "verify", "--repo", Repo()}).ok());
  EXPECT_TRUE(RunCommand({"repo", "gc", "--repo", Repo()}).ok());
}

TEST_F(RepoCommandsTest, DefaultRepositoryIsInTheStateDirectory) {
  ASSERT_TRUE(RunCommand({"repo", "init"}).ok());
  EXPECT_TRUE(repo::Repository::Open(dir_.path() + "/repo", repo::OpenOptions{}).ok());
}

TEST_F(RepoCommandsTest, RefusesBadOptionsWithAdvice) {
  Status status = RunCommand({"repo", "init", Repo(), "--encryption", "aes-256-gcm"});
  EXPECT_TRUE(absl::IsInvalidArgument(status));
  EXPECT_THAT(status.message(), HasSubstr("--key-file"));
  EXPECT_TRUE(absl::IsInvalidArgument(RunCommand({"repo", "init", Repo(), "--chunk-size", "3M"})));
  EXPECT_TRUE(
      absl::IsInvalidArgument(RunCommand({"repo", "init", Repo(), "--compression", "lz4"})));
  EXPECT_TRUE(absl::IsNotFound(RunCommand({"repo", "info", "--repo", Repo()})));
}

TEST_F(RepoCommandsTest, EncryptedRepositoryOpensOnlyWithItsKey) {
  std::string key = dir_.path() + "/key";
  ASSERT_TRUE(
      RunCommand({"repo", "init", Repo(), "--encryption", "aes-256-gcm", "--key-file", key}).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(RunCommand({"repo", "info", "--repo", Repo()})));
  EXPECT_TRUE(RunCommand({"repo", "info", "--repo", Repo(), "--key-file", key}).ok());
}

TEST_F(RepoCommandsTest, VerifyExitsWithDataLossOnACorruptChunk) {
  ASSERT_TRUE(RunCommand({"repo", "init", Repo(), "--chunk-size", "1M"}).ok());
  auto repo = *repo::Repository::Open(Repo(), repo::OpenOptions{});
  repo::RecoveryPointRequest request;
  request.vm = {"uuid-web01", "web01"};
  auto writer = *repo->BeginRecoveryPoint(request);
  auto volume = *writer->AddVolume("vda", 1 << 20);
  ASSERT_TRUE(volume->PutChunk(0, std::string(1 << 20, 'x')).ok());
  std::string id = writer->Commit({})->id;
  auto manifest = *repo->GetRecoveryPoint(id);
  auto index = *repo->LoadIndex(manifest, manifest.volumes[0]);
  ASSERT_TRUE(repo->fs()->WriteFileDurably(repo->ChunkPath(index.chunks[0]), "garbage").ok());
  Status status = RunCommand({"repo", "verify", "--repo", Repo()});
  EXPECT_TRUE(absl::IsDataLoss(status)) << status;
  EXPECT_TRUE(
      RunCommand({"repo", "prune", "web01", "--keep-last", "1", "--dry-run", "--repo", Repo()})
          .ok());
  EXPECT_TRUE(absl::IsInvalidArgument(RunCommand({"repo", "prune", "web01", "--repo", Repo()})));
}

// Commits a one-chunk recovery point of VM web01 to the repository at `path`; returns its id.
std::string CommitPoint(const std::string& path) {
  auto repo = *repo::Repository::Open(path, repo::OpenOptions{});
  repo::RecoveryPointRequest request;
  request.vm = {"uuid-web01", "web01"};
  auto writer = *repo->BeginRecoveryPoint(request);
  auto volume = *writer->AddVolume("vda", 1 << 20);
  EXPECT_TRUE(volume->PutChunk(0, std::string(1 << 20, 'x')).ok());
  return writer->Commit({})->id;
}

// How many recovery points the catalog of the state directory `home` lists.
size_t CatalogedPoints(const std::string& home) {
  auto catalog = *catalog::Catalog::Open(home + "/catalog.db");
  auto index = *catalog::RecoveryPointIndex::Open(catalog->db());
  return index->List("")->size();
}

TEST_F(RepoCommandsTest, DeletePruneAndRebuildKeepTheCatalogInStep) {
  ASSERT_TRUE(RunCommand({"repo", "init", "--chunk-size", "1M"}).ok());
  std::string first = CommitPoint(Repo());
  std::string second = CommitPoint(Repo());
  ASSERT_TRUE(RunCommand({"repo", "rebuild-catalog", "--json"}).ok());
  EXPECT_EQ(CatalogedPoints(dir_.path()), 2u);
  ASSERT_TRUE(RunCommand({"repo", "prune", "web01", "--keep-last", "1"}).ok());
  EXPECT_EQ(CatalogedPoints(dir_.path()), 1u);
  EXPECT_TRUE(absl::IsNotFound(RunCommand({"snapshot", "delete", first})));
  ASSERT_TRUE(RunCommand({"snapshot", "delete", second}).ok());
  EXPECT_EQ(CatalogedPoints(dir_.path()), 0u);
  EXPECT_TRUE(absl::IsNotFound(RunCommand({"snapshot", "delete", second})));
  EXPECT_TRUE(RunCommand({"repo", "gc"}).ok());
  EXPECT_TRUE(absl::IsNotFound(RunCommand({"vm", "set-limit", "web01", "1G"})));
}

}  // namespace
}  // namespace sp::cli
