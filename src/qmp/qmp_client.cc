#include "qmp/qmp_client.h"

#include "absl/strings/cord.h"
#include "platform/json_guard.h"

namespace sp::qmp {
namespace {

constexpr char kClassPayload[] = "stillpoint/qmp-error-class";

absl::StatusCode CodeForClass(const std::string& error_class) {
  if (error_class == "CommandNotFound") return absl::StatusCode::kUnimplemented;
  if (error_class == "DeviceNotFound") return absl::StatusCode::kNotFound;
  return absl::StatusCode::kFailedPrecondition;
}

Event ParseEvent(const json& message) {
  Event event;
  event.name = message.value("event", "");
  if (message.contains("data")) event.data = message["data"];
  if (message.contains("timestamp") && message["timestamp"].is_object()) {
    const json& stamp = message["timestamp"];
    event.unix_micros =
        stamp.value("seconds", int64_t{0}) * 1'000'000 + stamp.value("microseconds", int64_t{0});
  }
  return event;
}

}  // namespace

std::string ErrorClass(const Status& status) {
  auto payload = status.GetPayload(kClassPayload);
  return payload ? std::string(*payload) : std::string();
}

Client::Client(std::unique_ptr<ByteStream> stream, std::string label)
    : stream_(std::move(stream)), reader_(stream_.get()), label_(std::move(label)) {}

StatusOr<std::unique_ptr<Client>> Client::Connect(absl::string_view path, std::string label,
                                                  Millis timeout) {
  Deadline deadline = Deadline::In(timeout);
  auto connection = UnixConnection::Connect(path, deadline);
  if (!connection.ok()) {
    return Annotate(connection.status(),
                    absl::StrCat(label, ": cannot connect to QMP socket ", path));
  }
  return Handshake(std::move(connection).value(), std::move(label), deadline);
}

StatusOr<std::unique_ptr<Client>> Client::Handshake(std::unique_ptr<ByteStream> stream,
                                                    std::string label, Deadline deadline) {
  std::string context = absl::StrCat(label, ": QMP greeting");
  return GuardJson(context, [&]() -> StatusOr<std::unique_ptr<Client>> {
    return HandshakeUnguarded(std::move(stream), std::move(label), deadline);
  });
}

StatusOr<std::unique_ptr<Client>> Client::HandshakeUnguarded(std::unique_ptr<ByteStream> stream,
                                                             std::string label, Deadline deadline) {
  std::unique_ptr<Client> client(new Client(std::move(stream), std::move(label)));
  SP_ASSIGN_OR_RETURN(std::optional<json> greeting,
                      client->ReadMessage(deadline, "the QMP greeting"));
  if (!greeting || !greeting->contains("QMP")) {
    return absl::InternalError(absl::StrCat(client->label_, ": expected a QMP greeting, got ",
                                            greeting ? greeting->dump() : "an event"));
  }
  const json& version = (*greeting)["QMP"].value("version", json::object());
  if (version.contains("qemu")) {
    const json& qemu = version["qemu"];
    client->qemu_version_ = absl::StrCat(qemu.value("major", 0), ".", qemu.value("minor", 0), ".",
                                         qemu.value("micro", 0));
  }
  int left = deadline.PollTimeoutMs();
  Millis timeout = left < 0 ? kDefaultCommandTimeout : Millis(left);
  SP_RETURN_IF_ERROR(client->Execute("qmp_capabilities", nullptr, timeout).status());
  return client;
}

Status Client::Fail(const Status& status, const std::string& waiting_for) const {
  if (status.code() == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(absl::StrCat(label_, ": QEMU went away (QMP connection closed) ",
                                               "while waiting for ", waiting_for));
  }
  return Annotate(status, absl::StrCat(label_, ": QMP, waiting for ", waiting_for));
}

StatusOr<std::optional<json>> Client::ReadMessage(Deadline deadline,
                                                  const std::string& waiting_for) {
  auto line = reader_.ReadLine(deadline);
  if (!line.ok()) return Fail(line.status(), waiting_for);
  json message = json::parse(*line, nullptr, /*allow_exceptions=*/false);
  if (message.is_discarded() || !message.is_object()) {
    return absl::InternalError(absl::StrCat(label_, ": QEMU sent a message that is not a JSON ",
                                            "object while waiting for ", waiting_for, ": ",
                                            line->substr(0, 200)));
  }
  if (message.contains("event")) {
    SP_ASSIGN_OR_RETURN(
        Event event, GuardJson(label_, [&]() -> StatusOr<Event> { return ParseEvent(message); }));
    events_.push_back(std::move(event));
    return std::optional<json>();
  }
  return std::optional<json>(std::move(message));
}

StatusOr<json> Client::Execute(const std::string& command, const json& arguments, Millis timeout) {
  return GuardJson(absl::StrCat(label_, ": reply to '", command, "'"), [&]() -> StatusOr<json> {
    return ExecuteUnguarded(command, arguments, timeout);
  });
}

StatusOr<json> Client::ExecuteUnguarded(const std::string& command, const json& arguments,
                                        Millis timeout) {
  std::string id = absl::StrCat("sp-", next_id_++);
  json request = {{"execute", command}, {"id", id}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  Deadline deadline = Deadline::In(timeout);
  std::string what = absl::StrCat("the reply to '", command, "'");
  Status written = stream_->WriteAll(request.dump() + "\n", deadline);
  if (!written.ok()) return Fail(written, what);
  while (true) {
    auto message = ReadMessage(deadline, what);
    if (!message.ok()) {
      if (message.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return absl::DeadlineExceededError(absl::StrCat(label_, ": QEMU did not answer '", command,
                                                        "' within ", timeout.count(), " ms"));
      }
      return message.status();
    }
    if (!message->has_value()) continue;  // an event, queued
    json& reply = **message;
    if (!reply.contains("id") || reply["id"] != id) continue;  // a reply to an abandoned command
    if (reply.contains("return")) return std::move(reply["return"]);
    const json& error = reply.value("error", json::object());
    std::string error_class = error.value("class", "UnknownError");
    Status status(CodeForClass(error_class),
                  absl::StrCat(label_, ": QMP command '", command, "' failed: ", error_class, ": ",
                               error.value("desc", "(no description)")));
    status.SetPayload(kClassPayload, absl::Cord(error_class));
    return status;
  }
}

StatusOr<Event> Client::NextEvent(Deadline deadline) {
  while (events_.empty()) {
    auto message = ReadMessage(deadline, "an event");
    if (!message.ok()) return message.status();
  }
  Event event = std::move(events_.front());
  events_.pop_front();
  return event;
}

StatusOr<Event> Client::WaitForEvent(const std::string& name, Deadline deadline,
                                     const std::function<bool(const Event&)>& filter) {
  size_t checked = 0;
  while (true) {
    for (; checked < events_.size(); ++checked) {
      const Event& event = events_[checked];
      if (event.name == name && (!filter || filter(event))) {
        Event found = event;
        events_.erase(events_.begin() + static_cast<std::ptrdiff_t>(checked));
        return found;
      }
    }
    auto message = ReadMessage(deadline, absl::StrCat("event ", name));
    if (!message.ok()) return message.status();
  }
}

}  // namespace sp::qmp
