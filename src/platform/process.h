// Child processes: spawning, supervision, and running a tool to completion with a time limit.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "platform/clock.h"
#include "platform/status.h"

namespace sp {

struct SpawnOptions {
  // Files (created/truncated) for the child's stdout and stderr; empty = inherit.
  // Both may name the same file.
  std::string stdout_path;
  std::string stderr_path;
  bool append_output = false;  // open the output files for appending instead of truncating
  bool new_session = false;    // setsid(): detach from our terminal and process group
  // When non-zero, the child gets this signal as soon as we die, however we die (SIGKILL too), so
  // that a helper such as a server never outlives the command that started it. The kernel sends
  // it when the *thread* that called Spawn exits: REQUIRES spawning from a thread that lives as
  // long as the child should (the main thread of a CLI command).
  int parent_death_signal = 0;
  std::map<std::string, std::string> extra_env;
};

// Starts `argv[0]` (looked up in PATH) with stdin from /dev/null. Returns the child's pid;
// NotFound when the program does not exist. The caller owns the child and must wait for it.
StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options);

// How a process ended.
struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled

  bool success() const { return !signaled && code == 0; }
  std::string Describe() const;  // "exited with status 1", "killed by signal 9 (SIGKILL)"
};

// Waits for child `pid` until `deadline`. std::nullopt when it is still running at the deadline.
StatusOr<std::optional<ExitStatus>> WaitChild(pid_t pid, Deadline deadline);

// Result of RunCommand.
struct CommandResult {
  ExitStatus status;
  std::string output;  // stdout and stderr interleaved
};

// Runs `argv` to completion, capturing its output. DeadlineExceeded (after killing it) when it
// runs past `deadline`; NotFound when the program does not exist. A non-zero exit is not an error
// here: inspect result.status.
StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, Deadline deadline);

// Like RunCommand, but a non-zero exit becomes an error carrying the tool's output.
StatusOr<std::string> RunCommandOk(const std::vector<std::string>& argv, Deadline deadline);

// True when a process with this pid exists (and is not a zombie).
bool ProcessAlive(pid_t pid);

// Sends `signal` to `pid`. NotFound when it is gone.
Status SendSignal(pid_t pid, int signal);

// Forks a detached copy of the current process (new session, stdin from /dev/null, stdout and
// stderr to `log_path`). Returns the child's pid in the parent and 0 in the child, like fork().
// The child is reparented to init as soon as the intermediate process exits, so the caller never
// needs to wait for it.
StatusOr<pid_t> ForkDetached(const std::string& log_path);

// Starts `argv` as a detached process (see ForkDetached) that keeps `inherit_fd` open across its
// exec; every other descriptor of ours is closed-on-exec as usual. Returns its pid. An exec
// failure is written to `log_path`.
StatusOr<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log_path,
                              int inherit_fd);

// Absolute path of the running executable.
StatusOr<std::string> SelfExecutable();

}  // namespace sp
