#include "qga/freeze_record.h"

#include <signal.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "platform/file_system.h"
#include "platform/files.h"
#include "platform/json_guard.h"
#include "platform/process.h"
#include "qga/qga_client.h"

namespace sp::qga {
namespace {

using nlohmann::json;

bool Alive(pid_t pid) { return pid > 0 && ProcessAlive(pid); }

void KillAndWait(pid_t pid) {
  if (!Alive(pid)) return;
  (void)SendSignal(pid, SIGKILL);
  Deadline gone = Deadline::In(Millis(10'000));
  while (Alive(pid) && !gone.Expired()) std::this_thread::sleep_for(Millis(10));
}

}  // namespace

Status WriteFreezeRecord(const std::string& path, const FreezeRecord& record) {
  json data = {{"capture_pid", record.capture_pid},
               {"guard_pid", record.guard_pid},
               {"deadline_unix_ms", record.deadline_unix_ms},
               {"qga_socket", record.qga_socket}};
  return WriteFileAtomic(path, data.dump() + "\n");
}

StatusOr<std::optional<FreezeRecord>> ReadFreezeRecord(const std::string& path) {
  auto text = ReadFile(path);
  if (absl::IsNotFound(text.status())) return std::optional<FreezeRecord>();
  SP_RETURN_IF_ERROR(text.status());
  json data = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  return GuardJson(path, [&]() -> StatusOr<std::optional<FreezeRecord>> {
    if (!data.is_object()) return absl::DataLossError(absl::StrCat(path, ": not a JSON object"));
    FreezeRecord record;
    record.capture_pid = data.at("capture_pid").get<pid_t>();
    record.guard_pid = data.at("guard_pid").get<pid_t>();
    record.deadline_unix_ms = data.at("deadline_unix_ms").get<int64_t>();
    record.qga_socket = data.at("qga_socket").get<std::string>();
    return std::optional<FreezeRecord>(record);
  });
}

StatusOr<std::string> ThawWithRetries(const std::string& qga_socket, const std::string& label,
                                      Millis give_up) {
  Deadline deadline = Deadline::In(give_up);
  Status last = absl::UnknownError("no attempt");
  for (int attempt = 1; !deadline.Expired(); ++attempt) {
    auto agent = Client::Connect(qga_socket, label, Millis(2000));
    if (agent.ok()) {
      auto thawed = (*agent)->Thaw(Millis(5000));
      if (thawed.ok()) {
        auto state = (*agent)->FreezeStatus(Millis(5000));
        if (state.ok() && *state == FreezeState::kThawed) {
          return absl::StrCat("thawed ", *thawed, " filesystem(s) after ", attempt, " attempt(s)");
        }
      }
      last = thawed.status();
    } else {
      last = agent.status();
    }
    std::this_thread::sleep_for(Millis(500));
  }
  return last;
}

StatusOr<std::string> ThawIfAbandoned(const std::string& path, const std::string& label,
                                      Millis grace) {
  if (!PathExists(path)) return std::string();
  auto lock = FileSystem::Posix()->TryLock(path + ".lock");
  if (absl::IsFailedPrecondition(lock.status())) return std::string();
  SP_RETURN_IF_ERROR(lock.status());
  SP_ASSIGN_OR_RETURN(std::optional<FreezeRecord> record, ReadFreezeRecord(path));
  if (!record) return std::string();
  bool overdue = Clock::Real()->UnixMicros() / 1000 > record->deadline_unix_ms + grace.count();
  if (!overdue && (Alive(record->capture_pid) || Alive(record->guard_pid))) return std::string();
  KillAndWait(record->capture_pid);  // the agent serves one client: theirs must be closed
  KillAndWait(record->guard_pid);
  SP_ASSIGN_OR_RETURN(std::string thawed,
                      ThawWithRetries(record->qga_socket, label, Millis(60'000)));
  ::unlink(path.c_str());
  return absl::StrCat("the capture (pid ", record->capture_pid, ") and its thaw guard (pid ",
                      record->guard_pid, ") ended while the guest was frozen; ", thawed);
}

}  // namespace sp::qga
