#include "platform/file_system.h"

#include <unistd.h>

#include <algorithm>

#include "gtest/gtest.h"
#include "platform/files.h"
#include "testing/scoped_umask.h"
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

// Both real and in-memory: a new file is created whole or not at all, and never over another.
void ExpectCreateNeverReplaces(FileSystem& fs, const std::string& dir) {
  std::string path = JoinPath(dir, "key");
  ASSERT_TRUE(fs.CreateFileDurably(path, "first").ok());
  Status again = fs.CreateFileDurably(path, "second");
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;
  EXPECT_EQ(*fs.ReadWholeFile(path), "first");
  EXPECT_EQ(*fs.ListDir(dir), std::vector<std::string>{"key"});  // no temp file left

  ASSERT_TRUE(fs.WriteFileDurably(JoinPath(dir, "other"), "x").ok());
  Status renamed = fs.RenameNoReplace(JoinPath(dir, "other"), path);
  EXPECT_TRUE(absl::IsAlreadyExists(renamed)) << renamed;
  EXPECT_EQ(*fs.ReadWholeFile(path), "first");
  EXPECT_EQ(*fs.ReadWholeFile(JoinPath(dir, "other")), "x");
  ASSERT_TRUE(fs.RenameNoReplace(JoinPath(dir, "other"), JoinPath(dir, "moved")).ok());
  EXPECT_FALSE(fs.Exists(JoinPath(dir, "other")));
  EXPECT_EQ(*fs.ReadWholeFile(JoinPath(dir, "moved")), "x");

  ASSERT_TRUE(fs.CreateDirs(JoinPath(dir, "tree/a/b")).ok());
  ASSERT_TRUE(fs.WriteFileDurably(JoinPath(dir, "tree/a/b/f"), "1").ok());
  ASSERT_TRUE(fs.WriteFileDurably(JoinPath(dir, "tree/g"), "2").ok());
  ASSERT_TRUE(fs.DeleteTree(JoinPath(dir, "tree")).ok());
  EXPECT_FALSE(fs.Exists(JoinPath(dir, "tree")));
  EXPECT_TRUE(fs.DeleteTree(JoinPath(dir, "tree")).ok());  // gone already: fine
}

TEST(MemFileSystemTest, CreateFileDurablyNeverReplaces) {
  MemFileSystem fs;
  ASSERT_TRUE(fs.CreateDir("/d").ok());
  ExpectCreateNeverReplaces(fs, "/d");
}

TEST(PosixFileSystemTest, CreateFileDurablyNeverReplaces) {
  testing::TempDir dir;
  ExpectCreateNeverReplaces(*FileSystem::Posix(), dir.path());
}

TEST(MemFileSystemTest, CreatedFileIsWholeOrAbsentAfterAPowerCutAtAnyStep) {
  for (int64_t budget = 0;; ++budget) {
    MemFileSystem mem;
    ASSERT_TRUE(mem.CreateDir("/d").ok());
    FaultInjectionFileSystem fs(&mem);
    fs.FailAfterMutations(budget);
    Status created = fs.CreateFileDurably("/d/key", "0123456789abcdef");
    mem.DropUnsyncedData();
    auto left = mem.ReadWholeFile("/d/key");
    if (left.ok()) {
      EXPECT_EQ(*left, "0123456789abcdef") << "after " << budget << " operations";
    } else {
      EXPECT_TRUE(absl::IsNotFound(left.status())) << left.status();
      EXPECT_FALSE(created.ok()) << "after " << budget << " operations";
    }
    if (created.ok()) break;
  }
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

TEST(PosixFileSystemTest, CreatesForTheOwnerOnlyWhateverTheUmask) {
  testing::TempDir dir;
  testing::ScopedUmask open_umask(0);
  FileSystem* fs = FileSystem::Posix();
  std::string sub = JoinPath(dir.path(), "a/b");
  ASSERT_TRUE(fs->CreateDirs(sub).ok());
  ASSERT_TRUE(fs->WriteFileDurably(JoinPath(sub, "f"), "x").ok());
  auto lock = fs->TryLock(JoinPath(sub, "lock"));
  ASSERT_TRUE(lock.ok());
  EXPECT_EQ(testing::ModeOf(JoinPath(dir.path(), "a").c_str()), 0700u);
  EXPECT_EQ(testing::ModeOf(sub.c_str()), 0700u);
  EXPECT_EQ(testing::ModeOf(JoinPath(sub, "f").c_str()), 0600u);
  EXPECT_EQ(testing::ModeOf(JoinPath(sub, "lock").c_str()), 0600u);
  EXPECT_EQ(fs->Stat(JoinPath(sub, "f"))->mode, 0600u);
}

TEST(FilesTest, HelpersSetExactModesWhateverTheUmask) {
  testing::TempDir dir;
  testing::ScopedUmask open_umask(0);
  std::string deep = dir.path() + "/x/y/z";
  ASSERT_TRUE(MakeDirs(deep).ok());
  for (const char* sub : {"/x", "/x/y", "/x/y/z"}) {
    EXPECT_EQ(testing::ModeOf((dir.path() + sub).c_str()), 0700u) << sub;
  }
  ASSERT_TRUE(WriteFileAtomic(deep + "/state", "1").ok());
  EXPECT_EQ(testing::ModeOf((deep + "/state").c_str()), 0600u);
  ASSERT_TRUE(WriteFileAtomic(deep + "/shared", "1", 0640).ok());
  EXPECT_EQ(testing::ModeOf((deep + "/shared").c_str()), 0640u);
  auto fd = CreateNewFile(deep + "/new", 0640);
  ASSERT_TRUE(fd.ok()) << fd.status();
  ::close(*fd);
  EXPECT_EQ(testing::ModeOf((deep + "/new").c_str()), 0640u);
  EXPECT_TRUE(absl::IsAlreadyExists(CreateNewFile(deep + "/new").status()));
  // A directory that exists keeps the mode its owner gave it.
  ASSERT_EQ(::chmod(deep.c_str(), 0755), 0);
  ASSERT_TRUE(MakeDirs(deep + "/w", 0750).ok());
  EXPECT_EQ(testing::ModeOf(deep.c_str()), 0755u);
  EXPECT_EQ(testing::ModeOf((deep + "/w").c_str()), 0750u);
}

TEST(FilesTest, DirectoryModesFollowFileModes) {
  EXPECT_EQ(DirModeFor(0600), 0700u);
  EXPECT_EQ(DirModeFor(0640), 0750u);
  EXPECT_EQ(DirModeFor(0644), 0755u);
}

TEST(FilesTest, WritableByOthersIsRefusedWithTheChmodToRun) {
  EXPECT_TRUE(RefuseWritableByOthers("/r", 0755, "repository directory").ok());
  Status group = RefuseWritableByOthers("/r/config", 0664, "repository config");
  EXPECT_TRUE(absl::IsFailedPrecondition(group));
  EXPECT_NE(group.message().find("/r/config is writable by its group (mode 0664)"),
            absl::string_view::npos)
      << group;
  EXPECT_NE(group.message().find("chmod go-w /r/config"), absl::string_view::npos);
  EXPECT_FALSE(RefuseWritableByOthers("/k", 0602, "key file").ok());
}

}  // namespace
}  // namespace sp
