// UniqueFd and WriteAllAt on real files (and /dev/full for a full device).
#include "platform/fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "platform/files.h"
#include "testing/temp_dir.h"

namespace sp {
namespace {

TEST(FdTest, WriteAllAtLeavesHolesAndCloseReportsSuccess) {
  testing::TempDir dir;
  std::string path = dir.path() + "/image";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd.valid());
  std::string block(70'000, 'x');  // more than one pipe buffer, less than one call
  ASSERT_TRUE(WriteAllAt(fd.get(), block, 1 << 20, path).ok());
  ASSERT_TRUE(WriteAllAt(fd.get(), "head", 0, path).ok());
  ASSERT_TRUE(fd.Close(path).ok());
  EXPECT_FALSE(fd.valid());
  auto contents = ReadFile(path);
  ASSERT_TRUE(contents.ok()) << contents.status();
  ASSERT_EQ(contents->size(), (1u << 20) + block.size());
  EXPECT_EQ(contents->substr(0, 4), "head");
  EXPECT_EQ(contents->substr(4, (1 << 20) - 4), std::string((1 << 20) - 4, '\0'));
  EXPECT_EQ(contents->substr(1 << 20), block);
}

TEST(FdTest, ErrorsNameTheFile) {
  testing::TempDir dir;
  std::string path = dir.path() + "/read-only";
  ASSERT_TRUE(WriteFileAtomic(path, "data").ok());
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  Status refused = WriteAllAt(fd.get(), "more", 0, path);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("write " + path), absl::string_view::npos) << refused;

  // A descriptor closed behind the owner's back: Close says so.
  UniqueFd stale(::dup(fd.get()));
  ASSERT_EQ(::close(stale.get()), 0);
  Status closed = stale.Close("the stale copy");
  EXPECT_FALSE(closed.ok());
  EXPECT_NE(closed.message().find("close the stale copy"), absl::string_view::npos) << closed;
  EXPECT_FALSE(stale.valid());
}

TEST(FdTest, AFullDeviceIsResourceExhausted) {
  UniqueFd full(::open("/dev/full", O_WRONLY | O_CLOEXEC));
  ASSERT_TRUE(full.valid());
  Status written = WriteAllAt(full.get(), std::string(4096, 'x'), 0, "/dev/full");
  EXPECT_EQ(written.code(), absl::StatusCode::kResourceExhausted) << written;
}

}  // namespace
}  // namespace sp
