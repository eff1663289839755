#include "platform/unix_socket.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "testing/temp_dir.h"

namespace sp {
namespace {

TEST(UnixSocketTest, RejectsTooLongPathWithAdvice) {
  std::string path(200, 'x');
  Status status = CheckUnixSocketPath(path);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("limit is 107"), std::string::npos) << status;
  auto connection = UnixConnection::Connect(path, Deadline::In(Millis(100)));
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(UnixSocketTest, ConnectToMissingSocketIsNotFound) {
  testing::TempDir dir;
  auto connection = UnixConnection::Connect(dir.path() + "/none.sock", Deadline::In(Millis(100)));
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kNotFound);
}

TEST(UnixSocketTest, ReadFromSilentPeerTimesOut) {
  testing::TempDir dir;
  auto listener = UnixListener::Listen(dir.path() + "/s.sock");
  ASSERT_TRUE(listener.ok()) << listener.status();
  auto client = UnixConnection::Connect((*listener)->path(), Deadline::In(Millis(1000)));
  ASSERT_TRUE(client.ok()) << client.status();
  auto server = (*listener)->Accept(Deadline::In(Millis(1000)));
  ASSERT_TRUE(server.ok());
  char buffer[16];
  auto start = std::chrono::steady_clock::now();
  auto result = (*client)->ReadSome(buffer, sizeof(buffer), Deadline::In(Millis(150)));
  double waited = MillisSince(start);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(waited, 140);
  EXPECT_LT(waited, 2000);
}

TEST(LineReaderTest, SplitsRecordsAcrossReadsAndReportsClose) {
  testing::TempDir dir;
  auto listener = UnixListener::Listen(dir.path() + "/s.sock");
  ASSERT_TRUE(listener.ok());
  auto client = UnixConnection::Connect((*listener)->path(), Deadline::In(Millis(1000)));
  ASSERT_TRUE(client.ok());
  auto server = (*listener)->Accept(Deadline::In(Millis(1000)));
  ASSERT_TRUE(server.ok());
  std::thread writer([&] {
    ASSERT_TRUE((*server)->WriteAll("first\nsec", Deadline::In(Millis(1000))).ok());
    std::this_thread::yield();
    ASSERT_TRUE((*server)->WriteAll("ond\n\xFFthird", Deadline::In(Millis(1000))).ok());
    (*server)->Close();
  });
  LineReader reader(client->get());
  EXPECT_EQ(*reader.ReadLine(Deadline::In(Millis(2000))), "first");
  EXPECT_EQ(*reader.ReadLine(Deadline::In(Millis(2000))), "second");
  EXPECT_EQ(*reader.ReadUntil('\xFF', Deadline::In(Millis(2000))), "");
  auto last = reader.ReadLine(Deadline::In(Millis(2000)));
  EXPECT_EQ(last.status().code(), absl::StatusCode::kUnavailable);
  writer.join();
}

TEST(LineReaderTest, RefusesEndlessRecord) {
  testing::TempDir dir;
  auto listener = UnixListener::Listen(dir.path() + "/s.sock");
  ASSERT_TRUE(listener.ok());
  auto client = UnixConnection::Connect((*listener)->path(), Deadline::In(Millis(1000)));
  auto server = (*listener)->Accept(Deadline::In(Millis(1000)));
  ASSERT_TRUE(client.ok() && server.ok());
  std::thread writer(
      [&] { (void)(*server)->WriteAll(std::string(100000, 'a'), Deadline::In(Millis(2000))); });
  LineReader reader(client->get());
  auto line = reader.ReadUntil('\n', Deadline::In(Millis(2000)), 1000);
  EXPECT_EQ(line.status().code(), absl::StatusCode::kResourceExhausted);
  writer.join();
}

}  // namespace
}  // namespace sp
