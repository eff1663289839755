#include "qga/qga_client.h"

#include <gtest/gtest.h>

#include "testing/fake_peer.h"
#include "testing/temp_dir.h"

namespace sp::qga {
namespace {

using sp::testing::FakePeer;
using sp::testing::PeerAction;

// Answers like qemu-ga 7.2: the 0xFF before a sync request causes a parse-error reply, then the
// sync reply comes prefixed with 0xFF.
PeerAction AnswerSync(const std::string& request, const std::string& stale = "") {
  size_t brace = request.find('{');
  json parsed = json::parse(request.substr(brace));
  std::string parse_error = R"({"error": {"class": "GenericError", "desc": "Invalid JSON syntax"}})"
                            "\n";
  return PeerAction{stale + parse_error + "\xFF" +
                    absl::StrCat(R"({"return": )", parsed["arguments"]["id"].dump(), "}\n")};
}

bool IsSync(const std::string& request) {
  return request.find("guest-sync-delimited") != std::string::npos;
}

class QgaClientTest : public ::testing::Test {
 protected:
  std::unique_ptr<Client> ConnectTo(const FakePeer& peer) {
    auto client = Client::Connect(peer.path(), "VM 'web01'");
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(client).value() : nullptr;
  }
  std::string SocketPath() const { return dir_.path() + "/qga.sock"; }
  sp::testing::TempDir dir_;
};

TEST_F(QgaClientTest, SyncDiscardsStaleRepliesBeforeTheDelimiter) {
  FakePeer peer(SocketPath(), "", [](const std::string& request) {
    if (IsSync(request)) {
      // A stale reply of an abandoned command, and the reply of an older sync, come first.
      return AnswerSync(request, "{\"return\": \"stale\"}\n\xFF{\"return\": 12345}\n");
    }
    return PeerAction{"{\"return\": {}}\n"};
  });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  EXPECT_TRUE(client->Ping().ok());
  ASSERT_EQ(peer.requests().size(), 2u);
  EXPECT_EQ(peer.requests()[0][0], '\xFF');  // the sync starts with the delimiter byte
}

TEST_F(QgaClientTest, InfoFsinfoFreezeAndThaw) {
  bool frozen = false;
  FakePeer peer(SocketPath(), "", [&](const std::string& request) {
    if (IsSync(request)) return AnswerSync(request);
    json parsed = json::parse(request);
    std::string command = parsed["execute"];
    if (command == "guest-info") {
      return PeerAction{R"({"return": {"version": "7.2.22", "supported_commands": [)"
                        R"({"enabled": true, "name": "guest-fsfreeze-freeze"},)"
                        R"({"enabled": false, "name": "guest-get-devices"}]}})"
                        "\n"};
    }
    if (command == "guest-get-fsinfo") {
      return PeerAction{
          R"({"return": [{"name": "vdb", "total-bytes": 100, "mountpoint": "/data",)"
          R"( "disk": [{"serial": "sp-data", "bus-type": "virtio", "dev": "/dev/vdb",)"
          R"( "pci-controller": {"bus": 0, "slot": 5, "domain": 0, "function": 0},)"
          R"( "target": 0, "unit": 0, "bus": 0}], "used-bytes": 10, "type": "ext4"}]})"
          "\n"};
    }
    if (command == "guest-fsfreeze-freeze") {
      frozen = true;
      return PeerAction{"{\"return\": 2}\n"};
    }
    if (command == "guest-fsfreeze-status") {
      return PeerAction{frozen ? "{\"return\": \"frozen\"}\n" : "{\"return\": \"thawed\"}\n"};
    }
    if (command == "guest-fsfreeze-thaw") {
      frozen = false;
      return PeerAction{"{\"return\": 2}\n"};
    }
    return PeerAction{};
  });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  auto info = client->Info();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version, "7.2.22");
  EXPECT_TRUE(info->Supports("guest-fsfreeze-freeze"));
  EXPECT_FALSE(info->Supports("guest-get-devices"));
  auto fsinfo = client->GetFsinfo();
  ASSERT_TRUE(fsinfo.ok()) << fsinfo.status();
  ASSERT_EQ(fsinfo->size(), 1u);
  EXPECT_EQ((*fsinfo)[0].mountpoint, "/data");
  ASSERT_EQ((*fsinfo)[0].disks.size(), 1u);
  EXPECT_EQ((*fsinfo)[0].disks[0].serial, "sp-data");
  EXPECT_EQ((*fsinfo)[0].disks[0].pci_slot, 5);
  EXPECT_EQ(*client->Freeze(), 2);
  EXPECT_EQ(*client->FreezeStatus(), FreezeState::kFrozen);
  EXPECT_EQ(*client->Thaw(), 2);
  EXPECT_EQ(*client->FreezeStatus(), FreezeState::kThawed);
}

TEST_F(QgaClientTest, AbsentAgentTimesOutWithinDeadlineNamingCommandAndVm) {
  FakePeer peer(SocketPath(), "", [](const std::string&) { return PeerAction{}; });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  auto start = std::chrono::steady_clock::now();
  Status status = client->Ping(Millis(300));
  double waited = MillisSince(start);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(waited, 290);
  EXPECT_LT(waited, 2000);
  std::string message(status.message());
  EXPECT_NE(message.find("guest-ping"), std::string::npos) << message;
  EXPECT_NE(message.find("web01"), std::string::npos) << message;
  EXPECT_NE(message.find("300 ms"), std::string::npos) << message;
}

TEST_F(QgaClientTest, ResyncsAfterATimedOutCommand) {
  int pings = 0;
  FakePeer peer(SocketPath(), "", [&](const std::string& request) {
    if (IsSync(request)) return AnswerSync(request);
    if (++pings == 1) return PeerAction{};  // the first ping hangs...
    return PeerAction{"{\"return\": {}}\n"};
  });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->Ping(Millis(200)).code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(client->Ping(Millis(2000)).ok());
  int syncs = 0;
  for (const std::string& request : peer.requests()) syncs += IsSync(request) ? 1 : 0;
  EXPECT_EQ(syncs, 2);
}

TEST_F(QgaClientTest, FrozenAgentRefusesExecWithItsReason) {
  FakePeer peer(SocketPath(), "", [](const std::string& request) {
    if (IsSync(request)) return AnswerSync(request);
    return PeerAction{R"({"error": {"class": "CommandNotFound", "desc": "Command guest-exec has )"
                      R"(been disabled: the agent is in frozen state"}})"
                      "\n"};
  });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  auto pid = client->Exec("/bin/true", {}, false);
  EXPECT_EQ(pid.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(std::string(pid.status().message()).find("frozen state"), std::string::npos);
}

TEST_F(QgaClientTest, ExecDecodesOutput) {
  FakePeer peer(SocketPath(), "", [](const std::string& request) {
    if (IsSync(request)) return AnswerSync(request);
    json parsed = json::parse(request);
    if (parsed["execute"] == "guest-exec") return PeerAction{"{\"return\": {\"pid\": 42}}\n"};
    // "aGVsbG8K" is "hello\n".
    return PeerAction{R"({"return": {"exitcode": 0, "out-data": "aGVsbG8K", "exited": true}})"
                      "\n"};
  });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  auto result = client->Run("/bin/echo", {"hello"}, Millis(2000));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->exited);
  EXPECT_EQ(result->exit_code, 0);
  EXPECT_EQ(result->out, "hello\n");
}

TEST_F(QgaClientTest, ClosedChannelAndGarbageAreErrors) {
  int calls = 0;
  FakePeer peer(SocketPath(), "", [&](const std::string& request) {
    if (IsSync(request)) return AnswerSync(request);
    if (++calls == 1) return PeerAction{"not json at all\n"};
    return PeerAction{"", true};
  });
  auto client = ConnectTo(peer);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->Ping().code(), absl::StatusCode::kInternal);
  Status closed = client->Ping();
  EXPECT_EQ(closed.code(), absl::StatusCode::kUnavailable) << closed;
}

}  // namespace
}  // namespace sp::qga
