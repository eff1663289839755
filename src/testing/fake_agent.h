// Test helper: a model of the qemu-guest-agent behind qga::Agent. It keeps the agent's rules that
// a capture relies on — a freeze while frozen is refused, a thaw while thawed returns 0, the
// freeze status answers while frozen — and can fail at any call, or hang there (every call from
// then on gets no answer in time: DeadlineExceeded). It records what the guest went through
// (freezes, thaws, whether it is frozen now) and how many connections are open (the real agent
// serves one client at a time).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "qga/qga_client.h"

namespace sp::testing {

class FakeAgent {
 public:
  enum class Call { kSync, kPing, kInfo, kFreezeStatus, kGetFsinfo, kFreeze, kThaw };

  // The next `call` returns `error` (once). A freeze may still have frozen some filesystems
  // when it fails: `freeze_anyway`.
  void FailNext(Call call, Status error, bool freeze_anyway = false) {
    failures_[call] = std::move(error);
    freeze_despite_failure_ = freeze_anyway;
  }
  // From the next `call` on, no call gets an answer in time: the agent hangs there.
  void HangFrom(Call call) { hang_from_ = call; }

  // A new connection to the agent, as qga::Client::Connect makes.
  std::unique_ptr<qga::Agent> Connect() { return std::make_unique<Connection>(this); }

  // What someone else (or the thaw guard, which retries until it succeeds) does to the guest.
  void FreezeByOthers() { frozen_ = true; }
  void ThawByGuard() {
    if (frozen_) ++thaws_;
    frozen_ = false;
  }

  bool frozen() const { return frozen_; }
  int freezes() const { return freezes_; }
  int thaws() const { return thaws_; }
  int open_connections() const { return open_; }
  // Every call made, by name, in order ("sync", "ping", ...).
  const std::vector<std::string>& calls() const { return calls_; }

  std::string version_ = "7.2.22";
  std::vector<qga::Filesystem> filesystems_ = {
      {"/", "ext4", "vda", -1, -1, {{"root-serial", "/dev/vda", "virtio"}}},
      {"/data", "ext4", "vdb", -1, -1, {{"data-serial", "/dev/vdb", "virtio"}}}};

 private:
  // One client's connection; the state is the agent's.
  class Connection final : public qga::Agent {
   public:
    explicit Connection(FakeAgent* agent) : agent_(agent), label_("VM 'fake'") { ++agent_->open_; }
    ~Connection() override { --agent_->open_; }
    Status Sync(Millis) override { return agent_->Answer(Call::kSync, "sync"); }
    Status Ping(Millis) override { return agent_->Answer(Call::kPing, "ping"); }
    StatusOr<qga::AgentInfo> Info(Millis) override { return agent_->Info(); }
    StatusOr<std::vector<qga::Filesystem>> GetFsinfo(Millis) override {
      SP_RETURN_IF_ERROR(agent_->Answer(Call::kGetFsinfo, "fsinfo"));
      return agent_->filesystems_;
    }
    StatusOr<qga::FreezeState> FreezeStatus(Millis) override {
      SP_RETURN_IF_ERROR(agent_->Answer(Call::kFreezeStatus, "status"));
      return agent_->frozen_ ? qga::FreezeState::kFrozen : qga::FreezeState::kThawed;
    }
    StatusOr<int> Freeze(Millis) override { return agent_->Freeze(); }
    StatusOr<int> Thaw(Millis) override { return agent_->Thaw(); }
    const std::string& label() const override { return label_; }

   private:
    FakeAgent* agent_;
    std::string label_;
  };

  Status Answer(Call call, const char* name) {
    calls_.push_back(name);
    if (hang_from_ == call) hung_ = true;
    if (hung_) return absl::DeadlineExceededError("guest agent: no reply within the timeout");
    auto failure = failures_.find(call);
    if (failure == failures_.end()) return absl::OkStatus();
    Status error = failure->second;
    failures_.erase(failure);
    return error;
  }

  StatusOr<qga::AgentInfo> Info() {
    SP_RETURN_IF_ERROR(Answer(Call::kInfo, "info"));
    qga::AgentInfo info{version_, {"guest-ping", "guest-fsfreeze-status", "guest-fsfreeze-thaw"}};
    // While frozen, the agent reports its freeze command as disabled.
    if (!frozen_) info.enabled_commands.push_back("guest-fsfreeze-freeze");
    return info;
  }

  StatusOr<int> Freeze() {
    Status answered = Answer(Call::kFreeze, "freeze");
    if (!answered.ok()) {
      if (freeze_despite_failure_) frozen_ = true;
      return answered;
    }
    if (frozen_) {
      return absl::NotFoundError(
          "CommandNotFound: guest-fsfreeze-freeze disabled: the agent is in frozen state");
    }
    frozen_ = true;
    ++freezes_;
    return static_cast<int>(filesystems_.size());
  }

  StatusOr<int> Thaw() {
    SP_RETURN_IF_ERROR(Answer(Call::kThaw, "thaw"));
    if (!frozen_) return 0;
    frozen_ = false;
    ++thaws_;
    return static_cast<int>(filesystems_.size());
  }

  std::map<Call, Status> failures_;
  bool freeze_despite_failure_ = false;
  std::optional<Call> hang_from_;
  bool hung_ = false;
  bool frozen_ = false;
  int freezes_ = 0;
  int thaws_ = 0;
  int open_ = 0;
  std::vector<std::string> calls_;
};

}  // namespace sp::testing
