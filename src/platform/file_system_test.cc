#include "platform/file_system.h"

#include <algorithm>

#include "gtest/gtest.h"
#include "testing/temp_dir.h"

namespace sp {
namespace {

Status WriteUnsynced(FileSystem& fs, const std::string& path, absl::string_view data) {
  SP_ASSIGN_OR_RETURN(auto file, fs.NewWritableFile(path));
  SP_RETURN_IF_ERROR(file->Append(data));
  return file->Close();
}

TEST(MemFileSystemTest, PowerCutDropsWhatWasNotSynced) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDirs("/r/a").ok());
  ASSERT_TRUE(fs.WriteFileDurably("/r/a/durable", "kept").ok());
  ASSERT_TRUE(WriteUnsynced(fs, "/r/a/volatile", "lost").ok());
  fs.DropUnsyncedData();
  EXPECT_EQ(*fs.ReadWholeFile("/r/a/durable"), "kept");
  EXPECT_TRUE(absl::IsNotFound(fs.Stat("/r/a/volatile").status()));
}

TEST(MemFileSystemTest, RenameWithoutDirSyncIsUndoneByPowerCut) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/d").ok());
  auto file = *fs.NewWritableFile("/d/tmp");
  ASSERT_TRUE(file->Append("x").ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(fs.Rename("/d/tmp", "/d/final").ok());
  fs.DropUnsyncedData();
  EXPECT_FALSE(fs.Exists("/d/final"));
}

TEST(MemFileSystemTest, SyncedPrefixSurvivesAndLaterAppendsDoNot) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/d").ok());
  auto file = *fs.NewWritableFile("/d/f");
  ASSERT_TRUE(fs.SyncDir("/d").ok());
  ASSERT_TRUE(file->Append("abc").ok());
  ASSERT_TRUE(file->Sync().ok());
  ASSERT_TRUE(file->Append("def").ok());
  fs.DropUnsyncedData();
  EXPECT_EQ(*fs.ReadWholeFile("/d/f"), "abc");
}

TEST(MemFileSystemTest, ListsFilesAndSubdirectories) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDirs("/r/sub/deeper").ok());
  ASSERT_TRUE(fs.WriteFileDurably("/r/file", "1").ok());
  auto names = *fs.ListDir("/r");
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"file", "sub"}));
  EXPECT_FALSE(fs.DeleteDir("/r/sub").ok());
}

TEST(MemFileSystemTest, LocksExcludeUntilReleased) {
  MemFileSystem fs;
  auto first = fs.TryLock("/lock");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(fs.TryLock("/lock").status()));
  first->reset();
  EXPECT_TRUE(fs.TryLock("/lock").ok());
}

TEST(MemFileSystemTest, TouchAdvancesModificationTime) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.WriteFileDurably("/f", "1").ok());
  int64_t before = fs.Stat("/f")->modified_micros;
  ASSERT_TRUE(fs.Touch("/f").ok());
  EXPECT_GT(fs.Stat("/f")->modified_micros, before);
  ASSERT_TRUE(fs.Rename("/f", "/g").ok());
  EXPECT_GT(fs.Stat("/g")->modified_micros, before);
}

TEST(FaultInjectionFileSystemTest, InjectsPerOperationErrors) {
  MemFileSystem mem;
  FaultInjectionFileSystem fs(&mem);
  fs.InjectError(FsOp::kAppend, absl::ResourceExhaustedError("ENOSPC"), "full", 0, 1);
  EXPECT_TRUE(absl::IsResourceExhausted(fs.WriteFileDurably("/full", "x")));
  EXPECT_TRUE(fs.WriteFileDurably("/full", "x").ok());
  EXPECT_FALSE(mem.Exists("/full.tmp"));
  fs.InjectError(FsOp::kRead, absl::DataLossError("EIO"));
  EXPECT_TRUE(absl::IsDataLoss(fs.ReadWholeFile("/full").status()));
}

TEST(FaultInjectionFileSystemTest, FailsEverythingAfterMutationBudget) {
  MemFileSystem mem;
  FaultInjectionFileSystem fs(&mem);
  fs.FailAfterMutations(2);
  EXPECT_TRUE(fs.CreateDir("/a").ok());
  EXPECT_TRUE(fs.CreateDir("/b").ok());
  EXPECT_TRUE(absl::IsUnavailable(fs.CreateDir("/c")));
  EXPECT_TRUE(absl::IsUnavailable(fs.Stat("/a").status()));
  fs.ClearFaults();
  EXPECT_EQ(fs.mutations(), 2);
}

TEST(PosixFileSystemTest, DurableWriteReadListStatLock) {
  testing::TempDir dir;
  FileSystem* fs = FileSystem::Posix();
  std::string sub = JoinPath(dir.path(), "a/b");
  ASSERT_TRUE(fs->CreateDirs(sub).ok());
  std::string path = JoinPath(sub, "f");
  ASSERT_TRUE(fs->WriteFileDurably(path, "hello").ok());
  EXPECT_EQ(*fs->ReadWholeFile(path), "hello");
  EXPECT_EQ(fs->Stat(path)->size, 5u);
  EXPECT_EQ(*fs->ListDir(sub), std::vector<std::string>{"f"});
  EXPECT_TRUE(fs->Touch(path).ok());
  auto lock = fs->TryLock(JoinPath(dir.path(), "lock"));
  ASSERT_TRUE(lock.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(fs->TryLock(JoinPath(dir.path(), "lock")).status()));
  EXPECT_TRUE(absl::IsNotFound(fs->DeleteFile(JoinPath(dir.path(), "missing"))));
}

}  // namespace
}  // namespace sp
