#include "qmp/qmp_client.h"

#include <gtest/gtest.h>

#include "testing/fake_peer.h"
#include "testing/temp_dir.h"

namespace sp::qmp {
namespace {

using sp::testing::FakePeer;
using sp::testing::PeerAction;

const char kGreeting[] =
    R"({"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, )"
    R"("capabilities": ["oob"]}})"
    "\r\n";

std::string Reply(const std::string& request, const std::string& body) {
  json parsed = json::parse(request);
  return absl::StrCat(R"({"return": )", body, R"(, "id": )", parsed["id"].dump(), "}\r\n");
}

std::string Event(const std::string& name, const std::string& data) {
  return absl::StrCat(R"({"timestamp": {"seconds": 1700000000, "microseconds": 5}, "event": ")",
                      name, R"(", "data": )", data, "}\r\n");
}

class QmpClientTest : public ::testing::Test {
 protected:
  std::string SocketPath() const { return dir_.path() + "/qmp.sock"; }
  sp::testing::TempDir dir_;
};

TEST_F(QmpClientTest, HandshakeCommandAndInterleavedEvents) {
  FakePeer peer(SocketPath(), kGreeting, [](const std::string& request) {
    json parsed = json::parse(request);
    if (parsed["execute"] == "qmp_capabilities") return PeerAction{Reply(request, "{}")};
    // An event arrives between the command and its reply, and a stale reply with another id.
    return PeerAction{Event("POWERDOWN", "{}") +
                      R"({"return": {"stale": true}, "id": "old-1"})"
                      "\r\n" +
                      Reply(request, R"({"status": "running", "running": true})")};
  });
  auto client = Client::Connect(peer.path(), "VM 'web01'");
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->qemu_version(), "7.2.22");
  auto status = (*client)->Execute("query-status");
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ((*status)["status"], "running");
  auto event = (*client)->NextEvent(Deadline::In(Millis(100)));
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->name, "POWERDOWN");
  EXPECT_EQ(event->unix_micros, 1700000000000005);
}

TEST_F(QmpClientTest, ErrorReplyCarriesClassDescAndCommand) {
  FakePeer peer(SocketPath(), kGreeting, [](const std::string& request) {
    json parsed = json::parse(request);
    if (parsed["execute"] == "qmp_capabilities") return PeerAction{Reply(request, "{}")};
    return PeerAction{absl::StrCat(
        R"({"error": {"class": "DeviceNotFound", "desc": "Device 'nope' not found"}, "id": )",
        parsed["id"].dump(), "}\r\n")};
  });
  auto client = Client::Connect(peer.path(), "VM 'web01'");
  ASSERT_TRUE(client.ok());
  auto result = (*client)->Execute("block-dirty-bitmap-add", {{"node", "nope"}});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorClass(result.status()), "DeviceNotFound");
  std::string message(result.status().message());
  EXPECT_NE(message.find("block-dirty-bitmap-add"), std::string::npos) << message;
  EXPECT_NE(message.find("Device 'nope' not found"), std::string::npos) << message;
  EXPECT_NE(message.find("web01"), std::string::npos) << message;
}

TEST_F(QmpClientTest, HungQemuTimesOutWithinDeadlineAndLateReplyIsDropped) {
  int count = 0;
  std::string delayed;
  FakePeer peer(SocketPath(), kGreeting, [&](const std::string& request) {
    json parsed = json::parse(request);
    if (parsed["execute"] == "qmp_capabilities") return PeerAction{Reply(request, "{}")};
    if (++count == 1) {
      delayed = Reply(request, R"("late")");
      return PeerAction{};  // hang
    }
    return PeerAction{delayed + Reply(request, R"("fresh")")};
  });
  auto client = Client::Connect(peer.path(), "VM 'web01'");
  ASSERT_TRUE(client.ok());
  auto start = std::chrono::steady_clock::now();
  auto first = (*client)->Execute("query-status", nullptr, Millis(200));
  EXPECT_EQ(first.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(MillisSince(start), 2000);
  EXPECT_NE(std::string(first.status().message()).find("within 200 ms"), std::string::npos);
  auto second = (*client)->Execute("query-status");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, "fresh");
}

TEST_F(QmpClientTest, EofIsReportedAsQemuWentAway) {
  FakePeer peer(SocketPath(), kGreeting, [](const std::string& request) {
    json parsed = json::parse(request);
    if (parsed["execute"] == "qmp_capabilities") return PeerAction{Reply(request, "{}")};
    return PeerAction{Event("SHUTDOWN", R"({"guest": false, "reason": "host-qmp-quit"})"), true};
  });
  auto client = Client::Connect(peer.path(), "VM 'web01'");
  ASSERT_TRUE(client.ok());
  auto result = (*client)->Execute("quit");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(std::string(result.status().message()).find("QEMU went away"), std::string::npos);
  auto event = (*client)->WaitForEvent("SHUTDOWN", Deadline::In(Millis(100)));
  ASSERT_TRUE(event.ok());
  EXPECT_EQ(event->data["reason"], "host-qmp-quit");
}

TEST_F(QmpClientTest, GarbageIsAnErrorNotACrash) {
  FakePeer peer(SocketPath(), "this is not json\r\n",
                [](const std::string&) { return PeerAction{}; });
  auto client = Client::Connect(peer.path(), "VM 'web01'", Millis(1000));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kInternal) << client.status();
}

TEST_F(QmpClientTest, SilentSocketTimesOutOnGreeting) {
  FakePeer peer(SocketPath(), "", [](const std::string&) { return PeerAction{}; });
  auto client = Client::Connect(peer.path(), "VM 'web01'", Millis(200));
  EXPECT_EQ(client.status().code(), absl::StatusCode::kDeadlineExceeded) << client.status();
}

}  // namespace
}  // namespace sp::qmp
