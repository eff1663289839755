// QMP client: talks to one QEMU's monitor socket.
//
// Connect() reads QEMU's greeting and negotiates capabilities. Execute() sends a command with a
// fresh id and waits (with a deadline) for the reply carrying that id; events that arrive in the
// meantime are queued and handed out by NextEvent()/WaitForEvent(). Replies to earlier commands
// that timed out are recognised by their id and dropped. One thread uses a client at a time.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "platform/clock.h"
#include "platform/status.h"
#include "platform/unix_socket.h"

namespace sp::qmp {

using nlohmann::json;

inline constexpr Millis kDefaultCommandTimeout{10'000};

// An asynchronous event from QEMU (SHUTDOWN, POWERDOWN, BLOCK_JOB_COMPLETED, ...).
// (The check sees json's noexcept move call its invariant assertion, which does not throw.)
struct Event {  // NOLINT(bugprone-exception-escape)
  std::string name;
  json data;                // the event's "data" member, or null
  int64_t unix_micros = 0;  // QEMU's timestamp
};

// The QMP error class QEMU reported for a failed command ("GenericError", "DeviceNotFound", ...),
// or "" when `status` did not come from a QMP error reply.
std::string ErrorClass(const Status& status);

// What the code above QMP needs of a QMP connection: commands and events. Client is the real
// one; tests put a model of QEMU behind it to fail any command at any step.
class Session {
 public:
  virtual ~Session() = default;
  // See Client::Execute.
  virtual StatusOr<json> Execute(const std::string& command, const json& arguments = nullptr,
                                 Millis timeout = kDefaultCommandTimeout) = 0;
  // See Client::WaitForEvent.
  virtual StatusOr<Event> WaitForEvent(
      const std::string& name, Deadline deadline,
      const std::function<bool(const Event&)>& filter = nullptr) = 0;
  // Names the VM in error messages.
  virtual const std::string& label() const = 0;
};

class Client final : public Session {
 public:
  // Connects to the QMP socket at `path` and completes the handshake within `timeout`.
  // `label` names the VM in error messages ("VM 'web01'").
  // NotFound: no socket; Unavailable: QEMU not listening or went away; DeadlineExceeded: no
  // greeting in time (another client may hold the socket: QEMU serves one at a time).
  static StatusOr<std::unique_ptr<Client>> Connect(absl::string_view path, std::string label,
                                                   Millis timeout = Millis(5000));
  // Same over an already connected stream (tests use this with fake peers). Takes ownership.
  static StatusOr<std::unique_ptr<Client>> Handshake(std::unique_ptr<ByteStream> stream,
                                                     std::string label, Deadline deadline);

  // Runs `command` and returns its "return" value. On a QMP error reply the status carries QEMU's
  // class and desc and the command's name (see ErrorClass()); DeadlineExceeded when no reply came
  // within `timeout`; Unavailable("QEMU went away") when the connection closed.
  StatusOr<json> Execute(const std::string& command, const json& arguments = nullptr,
                         Millis timeout = kDefaultCommandTimeout) override;

  // The next event, queued or arriving before `deadline`. DeadlineExceeded when none came.
  StatusOr<Event> NextEvent(Deadline deadline);
  // The first event named `name` (and matching `filter`, if given) before `deadline`; other
  // events seen meanwhile stay queued for NextEvent().
  StatusOr<Event> WaitForEvent(const std::string& name, Deadline deadline,
                               const std::function<bool(const Event&)>& filter = nullptr) override;

  // QEMU's version from the greeting, e.g. "7.2.22".
  const std::string& qemu_version() const { return qemu_version_; }
  const std::string& label() const override { return label_; }

 private:
  Client(std::unique_ptr<ByteStream> stream, std::string label);
  static StatusOr<std::unique_ptr<Client>> HandshakeUnguarded(std::unique_ptr<ByteStream> stream,
                                                              std::string label, Deadline deadline);
  StatusOr<json> ExecuteUnguarded(const std::string& command, const json& arguments,
                                  Millis timeout);
  // Reads one message; events are queued and return std::nullopt.
  StatusOr<std::optional<json>> ReadMessage(Deadline deadline, const std::string& waiting_for);
  Status Fail(const Status& status, const std::string& waiting_for) const;

  std::unique_ptr<ByteStream> stream_;
  LineReader reader_;
  std::string label_;
  std::string qemu_version_;
  std::deque<Event> events_;
  uint64_t next_id_ = 1;
};

}  // namespace sp::qmp
