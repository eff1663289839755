#include "qga/qga_client.h"

#include <random>
#include <thread>

#include "absl/strings/escaping.h"
#include "platform/json_guard.h"

namespace sp::qga {
namespace {

constexpr char kDelimiter = '\xFF';

absl::StatusCode CodeForClass(const std::string& error_class) {
  if (error_class == "CommandNotFound") return absl::StatusCode::kUnimplemented;
  return absl::StatusCode::kFailedPrecondition;
}

int64_t FreshSyncId() {
  std::random_device seed;
  std::mt19937_64 generator(seed());
  return static_cast<int64_t>(generator() >> 33);  // positive, fits a JSON integer everywhere
}

int JsonInt(const json& object, const char* key, int fallback = -1) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

FsDisk ParseDisk(const json& disk) {
  FsDisk result;
  result.serial = disk.value("serial", "");
  result.device = disk.value("dev", "");
  result.bus_type = disk.value("bus-type", "");
  const json& pci = disk.value("pci-controller", json::object());
  result.pci_domain = JsonInt(pci, "domain");
  result.pci_bus = JsonInt(pci, "bus");
  result.pci_slot = JsonInt(pci, "slot");
  result.pci_function = JsonInt(pci, "function");
  return result;
}

std::string DecodeBase64(const json& result, const char* key) {
  std::string decoded;
  if (result.contains(key) && result[key].is_string()) {
    absl::Base64Unescape(result[key].get<std::string>(), &decoded);
  }
  return decoded;
}

}  // namespace

bool AgentInfo::Supports(const std::string& command) const {
  return std::find(enabled_commands.begin(), enabled_commands.end(), command) !=
         enabled_commands.end();
}

StatusOr<std::unique_ptr<Client>> Client::Connect(absl::string_view path, std::string label,
                                                  Millis timeout) {
  auto connection = UnixConnection::Connect(path, Deadline::In(timeout));
  if (!connection.ok()) {
    return Annotate(connection.status(),
                    absl::StrCat(label, ": cannot connect to the guest agent socket ", path));
  }
  return std::make_unique<Client>(std::move(connection).value(), std::move(label));
}

Client::Client(std::unique_ptr<ByteStream> stream, std::string label,
               std::optional<int64_t> first_sync_id)
    : stream_(std::move(stream)),
      reader_(stream_.get()),
      label_(std::move(label)),
      next_sync_id_(first_sync_id.value_or(FreshSyncId())) {}

Status Client::TimeoutError(const std::string& command, Millis timeout) const {
  return absl::DeadlineExceededError(
      absl::StrCat(label_, ": guest agent did not answer ", command, " within ", timeout.count(),
                   " ms (is qemu-ga running in the guest, and the guest not hung?)"));
}

Status Client::Sync(Millis timeout) {
  synced_ = false;
  Deadline deadline = Deadline::In(timeout);
  int64_t id = next_sync_id_++;
  json request = {{"execute", "guest-sync-delimited"}, {"arguments", {{"id", id}}}};
  // The leading 0xFF makes the agent drop any partial input; it answers that with a parse error,
  // which lands before the delimiter like every other stale reply.
  Status written = stream_->WriteAll(std::string(1, kDelimiter) + request.dump() + "\n", deadline);
  if (!written.ok()) return Annotate(written, absl::StrCat(label_, ": guest agent sync"));
  while (true) {
    auto skipped = reader_.ReadUntil(kDelimiter, deadline);
    if (!skipped.ok()) {
      if (skipped.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return TimeoutError("guest-sync-delimited", timeout);
      }
      return Annotate(skipped.status(), absl::StrCat(label_, ": guest agent sync"));
    }
    auto line = reader_.ReadLine(deadline);
    if (!line.ok()) {
      if (line.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return TimeoutError("guest-sync-delimited", timeout);
      }
      return Annotate(line.status(), absl::StrCat(label_, ": guest agent sync"));
    }
    json reply = json::parse(*line, nullptr, false);
    if (!reply.is_discarded() && reply.is_object() && reply.contains("return") &&
        reply["return"] == id) {
      synced_ = true;
      return absl::OkStatus();
    }
    // The reply to an earlier, abandoned sync: keep looking for ours.
  }
}

StatusOr<json> Client::ReadReply(Deadline deadline, const std::string& command, Millis timeout) {
  return GuardJson(
      absl::StrCat(label_, ": guest agent reply to ", command),
      [&]() -> StatusOr<json> { return ReadReplyUnguarded(deadline, command, timeout); });
}

StatusOr<json> Client::ReadReplyUnguarded(Deadline deadline, const std::string& command,
                                          Millis timeout) {
  while (true) {
    auto line = reader_.ReadLine(deadline);
    if (!line.ok()) {
      synced_ = false;
      if (line.status().code() == absl::StatusCode::kDeadlineExceeded) {
        return TimeoutError(command, timeout);
      }
      if (line.status().code() == absl::StatusCode::kUnavailable) {
        return absl::UnavailableError(
            absl::StrCat(label_, ": guest agent connection closed while waiting for ", command,
                         " (QEMU went away?)"));
      }
      return Annotate(line.status(), absl::StrCat(label_, ": ", command));
    }
    size_t start = line->find_first_not_of(std::string("\xFF \r\t", 4));
    if (start == std::string::npos) continue;
    json reply = json::parse(line->substr(start), nullptr, false);
    if (reply.is_discarded() || !reply.is_object()) {
      synced_ = false;
      return absl::InternalError(absl::StrCat(label_, ": guest agent sent garbage in reply to ",
                                              command, ": ", line->substr(0, 200)));
    }
    if (reply.contains("return")) return std::move(reply["return"]);
    if (reply.contains("error")) {
      const json& error = reply["error"];
      std::string error_class = error.value("class", "UnknownError");
      return Status(CodeForClass(error_class),
                    absl::StrCat(label_, ": guest agent command ", command, " failed: ",
                                 error_class, ": ", error.value("desc", "(no description)")));
    }
    // Neither a reply nor an error (e.g. an unsolicited message): ignore it.
  }
}

StatusOr<json> Client::Execute(const std::string& command, const json& arguments, Millis timeout) {
  Deadline deadline = Deadline::In(timeout);
  if (!synced_) {
    // The sync shares the command's time budget, so that the caller's timeout holds overall.
    auto left = Millis(std::max(1, deadline.PollTimeoutMs()));
    Status synced = Sync(left);
    if (!synced.ok()) {
      if (synced.code() == absl::StatusCode::kDeadlineExceeded)
        return TimeoutError(command, timeout);
      return synced;
    }
  }
  json request = {{"execute", command}};
  if (!arguments.is_null()) request["arguments"] = arguments;
  Status written = stream_->WriteAll(request.dump() + "\n", deadline);
  if (!written.ok()) {
    synced_ = false;
    return Annotate(written, absl::StrCat(label_, ": sending ", command, " to the guest agent"));
  }
  return ReadReply(deadline, command, timeout);
}

Status Client::Ping(Millis timeout) { return Execute("guest-ping", nullptr, timeout).status(); }

StatusOr<AgentInfo> Client::Info(Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-info", nullptr, timeout));
  return GuardJson(absl::StrCat(label_, ": guest-info"), [&]() -> StatusOr<AgentInfo> {
    AgentInfo info;
    info.version = result.value("version", "");
    for (const json& command : result.value("supported_commands", json::array())) {
      if (command.value("enabled", false))
        info.enabled_commands.push_back(command.value("name", ""));
    }
    return info;
  });
}

StatusOr<std::vector<Filesystem>> Client::GetFsinfo(Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-get-fsinfo", nullptr, timeout));
  return GuardJson(absl::StrCat(label_, ": guest-get-fsinfo"),
                   [&]() -> StatusOr<std::vector<Filesystem>> {
                     std::vector<Filesystem> filesystems;
                     for (const json& entry : result) {
                       Filesystem fs;
                       fs.mountpoint = entry.value("mountpoint", "");
                       fs.type = entry.value("type", "");
                       fs.name = entry.value("name", "");
                       fs.total_bytes = entry.value("total-bytes", int64_t{-1});
                       fs.used_bytes = entry.value("used-bytes", int64_t{-1});
                       for (const json& disk : entry.value("disk", json::array()))
                         fs.disks.push_back(ParseDisk(disk));
                       filesystems.push_back(std::move(fs));
                     }
                     return filesystems;
                   });
}

StatusOr<int> Client::Freeze(Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-fsfreeze-freeze", nullptr, timeout));
  return result.is_number_integer() ? result.get<int>() : 0;
}

StatusOr<int> Client::FreezeList(const std::vector<std::string>& mountpoints, Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-fsfreeze-freeze-list",
                                           json{{"mountpoints", mountpoints}}, timeout));
  return result.is_number_integer() ? result.get<int>() : 0;
}

StatusOr<FreezeState> Client::FreezeStatus(Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-fsfreeze-status", nullptr, timeout));
  if (result == "frozen") return FreezeState::kFrozen;
  if (result == "thawed") return FreezeState::kThawed;
  return absl::InternalError(
      absl::StrCat(label_, ": guest agent reported an unknown freeze state ", result.dump()));
}

StatusOr<int> Client::Thaw(Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-fsfreeze-thaw", nullptr, timeout));
  return result.is_number_integer() ? result.get<int>() : 0;
}

StatusOr<int64_t> Client::Exec(const std::string& path, const std::vector<std::string>& args,
                               bool capture_output, Millis timeout) {
  json arguments = {{"path", path}, {"arg", args}, {"capture-output", capture_output}};
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-exec", arguments, timeout));
  if (!result.is_object() || !result.contains("pid") || !result["pid"].is_number_integer()) {
    return absl::InternalError(absl::StrCat(label_, ": guest-exec returned no pid"));
  }
  return result["pid"].get<int64_t>();
}

StatusOr<ExecResult> Client::ExecStatus(int64_t pid, Millis timeout) {
  SP_ASSIGN_OR_RETURN(json result, Execute("guest-exec-status", json{{"pid", pid}}, timeout));
  return GuardJson(absl::StrCat(label_, ": guest-exec-status"), [&]() -> StatusOr<ExecResult> {
    ExecResult status;
    status.exited = result.value("exited", false);
    status.exit_code = JsonInt(result, "exitcode");
    status.signal = JsonInt(result, "signal");
    status.out = DecodeBase64(result, "out-data");
    status.err = DecodeBase64(result, "err-data");
    return status;
  });
}

StatusOr<ExecResult> Client::Run(const std::string& path, const std::vector<std::string>& args,
                                 Millis timeout) {
  Deadline deadline = Deadline::In(timeout);
  SP_ASSIGN_OR_RETURN(int64_t pid, Exec(path, args, true, timeout));
  auto pause = Millis(5);
  while (true) {
    SP_ASSIGN_OR_RETURN(ExecResult status, ExecStatus(pid, timeout));
    if (status.exited) return status;
    if (deadline.Expired()) {
      return absl::DeadlineExceededError(absl::StrCat(label_, ": '", path, "' did not finish in ",
                                                      "the guest within ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, Millis(200));
  }
}

Status Client::Shutdown(const std::string& mode, Millis timeout) {
  Deadline deadline = Deadline::In(timeout);
  if (!synced_) SP_RETURN_IF_ERROR(Sync(timeout));
  json request = {{"execute", "guest-shutdown"}, {"arguments", {{"mode", mode}}}};
  synced_ = false;  // no reply comes on success; anything that does is stale from now on
  return Annotate(stream_->WriteAll(request.dump() + "\n", deadline),
                  absl::StrCat(label_, ": sending guest-shutdown"));
}

}  // namespace sp::qga
