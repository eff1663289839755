// Guest-agent client: talks to the qemu-guest-agent inside one VM over its virtio-serial channel.
//
// An absent, hung or frozen agent cannot be told apart from a slow one (QEMU owns the host end
// of the socket, so connect() always succeeds): every call takes a timeout, and its error names
// the command, the VM and how long it waited. Before the first command, and after any command
// that timed out, the client re-synchronises with guest-sync-delimited (0xFF, fresh id), which
// discards stale replies of abandoned commands.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "platform/clock.h"
#include "platform/status.h"
#include "platform/unix_socket.h"

namespace sp::qga {

using nlohmann::json;

inline constexpr Millis kDefaultTimeout{5000};

struct AgentInfo {
  std::string version;                        // e.g. "7.2.22"
  std::vector<std::string> enabled_commands;  // e.g. "guest-fsfreeze-freeze"

  bool Supports(const std::string& command) const;
};

struct FsDisk {
  std::string serial;    // the QEMU disk's serial= (needs udev data in the guest), or ""
  std::string device;    // guest device node, e.g. "/dev/vdb", or ""
  std::string bus_type;  // "virtio", "scsi", ...
  int pci_domain = -1, pci_bus = -1, pci_slot = -1, pci_function = -1;
};

struct Filesystem {
  std::string mountpoint;  // "/data"
  std::string type;        // "ext4"
  std::string name;        // guest device name, "vdb"
  int64_t total_bytes = -1;
  int64_t used_bytes = -1;
  std::vector<FsDisk> disks;
};

enum class FreezeState { kThawed, kFrozen };

struct ExecResult {
  bool exited = false;
  int exit_code = -1;
  int signal = -1;
  std::string out;
  std::string err;
};

// What the code above the guest agent needs of an agent connection: the handshake, the preflight
// questions, freeze and thaw. Client is the real one; tests put a model of the agent behind it
// to stay silent or fail at any call. Errors and timeouts as documented on Client.
class Agent {
 public:
  virtual ~Agent() = default;
  virtual Status Sync(Millis timeout = kDefaultTimeout) = 0;
  virtual Status Ping(Millis timeout = kDefaultTimeout) = 0;
  virtual StatusOr<AgentInfo> Info(Millis timeout = kDefaultTimeout) = 0;
  virtual StatusOr<std::vector<Filesystem>> GetFsinfo(Millis timeout = kDefaultTimeout) = 0;
  virtual StatusOr<FreezeState> FreezeStatus(Millis timeout = kDefaultTimeout) = 0;
  // Freezes all filesystems; returns how many were frozen.
  virtual StatusOr<int> Freeze(Millis timeout = kDefaultTimeout) = 0;
  // Thaws; returns how many filesystems were thawed (0 when nothing was frozen).
  virtual StatusOr<int> Thaw(Millis timeout = kDefaultTimeout) = 0;
  // Names the VM in error messages.
  virtual const std::string& label() const = 0;
};

class Client final : public Agent {
 public:
  // Connects to the agent's host-side socket. `label` names the VM in errors ("VM 'web01'").
  // This does not talk to the agent yet: a missing agent shows only at the first call.
  static StatusOr<std::unique_ptr<Client>> Connect(absl::string_view path, std::string label,
                                                   Millis timeout = kDefaultTimeout);
  // Same over an already connected stream (tests use this with fake peers). Takes ownership.
  // `first_sync_id` fixes the sync ids for reproducible tests; by default they are random, so
  // that replies meant for an earlier client of the same channel never match.
  Client(std::unique_ptr<ByteStream> stream, std::string label,
         std::optional<int64_t> first_sync_id = std::nullopt);

  // guest-sync-delimited handshake; everything the agent sent before the fresh id's reply is
  // dropped. DeadlineExceeded when the agent does not answer in time.
  Status Sync(Millis timeout = kDefaultTimeout) override;
  Status Ping(Millis timeout = kDefaultTimeout) override;
  StatusOr<AgentInfo> Info(Millis timeout = kDefaultTimeout) override;
  StatusOr<std::vector<Filesystem>> GetFsinfo(Millis timeout = kDefaultTimeout) override;

  // Freezes all (or the listed) filesystems; returns how many were frozen.
  StatusOr<int> Freeze(Millis timeout = kDefaultTimeout) override;
  StatusOr<int> FreezeList(const std::vector<std::string>& mountpoints,
                           Millis timeout = kDefaultTimeout);
  StatusOr<FreezeState> FreezeStatus(Millis timeout = kDefaultTimeout) override;
  // Thaws; returns how many filesystems were thawed (0 when nothing was frozen).
  StatusOr<int> Thaw(Millis timeout = kDefaultTimeout) override;

  // Starts `path` with `args` in the guest; returns the guest pid.
  StatusOr<int64_t> Exec(const std::string& path, const std::vector<std::string>& args,
                         bool capture_output, Millis timeout = kDefaultTimeout);
  StatusOr<ExecResult> ExecStatus(int64_t pid, Millis timeout = kDefaultTimeout);
  // Exec + poll until it exits or `timeout` passes (DeadlineExceeded).
  StatusOr<ExecResult> Run(const std::string& path, const std::vector<std::string>& args,
                           Millis timeout);

  // Asks the guest to power off ("powerdown"), "halt" or "reboot". The agent sends no reply on
  // success; the caller watches QEMU for the outcome.
  Status Shutdown(const std::string& mode = "powerdown", Millis timeout = kDefaultTimeout);

  // Sends `command` and returns its "return" value (syncing first when needed). A guest-agent
  // error reply becomes a status with the agent's class and desc.
  StatusOr<json> Execute(const std::string& command, const json& arguments, Millis timeout);

  const std::string& label() const override { return label_; }

 private:
  StatusOr<json> ReadReply(Deadline deadline, const std::string& command, Millis timeout);
  StatusOr<json> ReadReplyUnguarded(Deadline deadline, const std::string& command, Millis timeout);
  Status TimeoutError(const std::string& command, Millis timeout) const;

  std::unique_ptr<ByteStream> stream_;
  LineReader reader_;
  std::string label_;
  bool synced_ = false;
  int64_t next_sync_id_;
};

}  // namespace sp::qga
