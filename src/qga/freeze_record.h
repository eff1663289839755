// The freeze record: a small file that exists exactly while a capture may hold a guest frozen,
// naming the capture process, its thaw guard and the freeze deadline. It is the last line of the
// rule "the guest is never left frozen": when both the capture and its guard die (SIGKILL of
// both, the OOM killer), whoever finds the record with its processes gone — the VM's monitor
// process, or the next capture of the VM — thaws the guest and removes it.
//
// Writers: the capture (before the freeze; removed after the thaw), the thaw guard (removes it
// once it thawed). One party thaws an abandoned record at a time (an exclusive lock beside it).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "platform/clock.h"
#include "platform/status.h"

namespace sp::qga {

struct FreezeRecord {
  pid_t capture_pid = 0;
  pid_t guard_pid = 0;
  int64_t deadline_unix_ms = 0;  // the guard's deadline
  std::string qga_socket;
};

// Writes `record` to `path` atomically.
Status WriteFreezeRecord(const std::string& path, const FreezeRecord& record);

// The record at `path`; nullopt when there is none. DataLoss when it cannot be parsed.
StatusOr<std::optional<FreezeRecord>> ReadFreezeRecord(const std::string& path);

// Connects to the agent and thaws until it reports thawed, for up to `give_up`; returns what was
// done, in words ("thawed 2 filesystem(s) after 1 attempt(s)"), or the last error.
StatusOr<std::string> ThawWithRetries(const std::string& qga_socket, const std::string& label,
                                      Millis give_up);

// When the record at `path` was left by processes that are all gone (or that outlived the
// deadline by `grace`: they are killed first), thaws the guest and removes the record. Returns
// what was done in words, or an empty string when there was nothing to do (no record, its
// processes still at work, or another party is handling it).
StatusOr<std::string> ThawIfAbandoned(const std::string& path, const std::string& label,
                                      Millis grace = Millis(10'000));

}  // namespace sp::qga
