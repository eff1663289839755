#include "platform/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include "platform/files.h"
#include "platform/unix_socket.h"

namespace sp {
namespace {

int OpenOutput(const std::string& path, bool append) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC);
  return ::open(path.c_str(), flags, kOwnerFileMode);
}

// In the child after fork(): set up descriptors and exec. Never returns.
[[noreturn]] void ExecChild(const std::vector<std::string>& argv, const SpawnOptions& options,
                            int output_fd, int error_pipe, pid_t parent) {
  if (options.parent_death_signal != 0) {
    ::prctl(PR_SET_PDEATHSIG, options.parent_death_signal);
    // The parent may have died before the prctl took effect: then nobody would send the signal.
    if (::getppid() != parent) ::_exit(127);
  }
  if (options.new_session) ::setsid();
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
  if (output_fd >= 0) {
    ::dup2(output_fd, STDOUT_FILENO);
    ::dup2(output_fd, STDERR_FILENO);
  } else {
    if (!options.stdout_path.empty()) {
      int fd = OpenOutput(options.stdout_path, options.append_output);
      if (fd >= 0) ::dup2(fd, STDOUT_FILENO);
    }
    if (!options.stderr_path.empty()) {
      int fd = options.stderr_path == options.stdout_path
                   ? STDOUT_FILENO
                   : OpenOutput(options.stderr_path, options.append_output);
      if (fd >= 0) ::dup2(fd, STDERR_FILENO);
    }
  }
  // The forked child, alone in its process until exec: nothing reads the environment beside it.
  for (const auto& [key, value] : options.extra_env) {
    ::setenv(key.c_str(), value.c_str(), 1);  // NOLINT(concurrency-mt-unsafe)
  }
  ::signal(SIGPIPE, SIG_DFL);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  ::execvp(args[0], args.data());
  int error = errno;
  ssize_t ignored = ::write(error_pipe, &error, sizeof(error));
  (void)ignored;
  ::_exit(127);
}

StatusOr<pid_t> SpawnWithOutputFd(const std::vector<std::string>& argv, const SpawnOptions& options,
                                  int output_fd) {
  if (argv.empty()) return absl::InvalidArgumentError("spawn: empty command");
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int error = errno;
    ::close(error_pipe[0]);
    ::close(error_pipe[1]);
    return ErrnoStatus(error, "fork");
  }
  if (pid == 0) ExecChild(argv, options, output_fd, error_pipe[1], parent);
  ::close(error_pipe[1]);
  int exec_error = 0;
  ssize_t count = ::read(error_pipe[0], &exec_error, sizeof(exec_error));
  ::close(error_pipe[0]);
  if (count == sizeof(exec_error)) {
    ::waitpid(pid, nullptr, 0);
    return ErrnoStatus(exec_error, absl::StrCat("cannot run '", argv[0], "'"));
  }
  return pid;
}

ExitStatus FromWaitStatus(int status) {
  ExitStatus result;
  if (WIFSIGNALED(status)) {
    result.signaled = true;
    result.signal = WTERMSIG(status);
  } else {
    result.code = WEXITSTATUS(status);
  }
  return result;
}

}  // namespace

std::string ExitStatus::Describe() const {
  if (!signaled) return absl::StrCat("exited with status ", code);
  const char* name = sigabbrev_np(signal);
  return absl::StrCat("killed by signal ", signal, name ? absl::StrCat(" (SIG", name, ")") : "");
}

StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
  return SpawnWithOutputFd(argv, options, -1);
}

StatusOr<std::optional<ExitStatus>> WaitChild(pid_t pid, Deadline deadline) {
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    int status = 0;
    pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return std::optional<ExitStatus>(FromWaitStatus(status));
    if (done < 0 && errno != EINTR) return ErrnoStatus(errno, absl::StrCat("waitpid ", pid));
    if (deadline.Expired()) return std::optional<ExitStatus>();
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv, Deadline deadline) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  SP_ASSIGN_OR_RETURN(pid_t pid, SpawnWithOutputFd(argv, SpawnOptions{}, write_end.get()));
  write_end.Reset();
  CommandResult result;
  char buffer[8192];
  while (true) {
    pollfd entry{read_end.get(), POLLIN, 0};
    int ready = ::poll(&entry, 1, deadline.PollTimeoutMs());
    if (ready == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      return absl::DeadlineExceededError(
          absl::StrCat("'", argv[0], "' did not finish in time; output so far: ", result.output));
    }
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll");
    }
    ssize_t count = ::read(read_end.get(), buffer, sizeof(buffer));
    if (count < 0 && errno == EINTR) continue;
    if (count <= 0) break;
    result.output.append(buffer, static_cast<size_t>(count));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = FromWaitStatus(status);
  return result;
}

StatusOr<std::string> RunCommandOk(const std::vector<std::string>& argv, Deadline deadline) {
  SP_ASSIGN_OR_RETURN(CommandResult result, RunCommand(argv, deadline));
  if (!result.status.success()) {
    std::string output = result.output;
    while (!output.empty() && output.back() == '\n') output.pop_back();
    return absl::FailedPreconditionError(
        absl::StrCat("'", argv[0], "' ", result.status.Describe(), ": ", output));
  }
  return result.output;
}

bool ProcessAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  std::ifstream stat_file(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat_file, line)) return false;
  size_t close_paren = line.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= line.size()) return true;
  return line[close_paren + 2] != 'Z';
}

Status SendSignal(pid_t pid, int signal) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("invalid pid ", pid));
  if (::kill(pid, signal) != 0) return ErrnoStatus(errno, absl::StrCat("signal pid ", pid));
  return absl::OkStatus();
}

StatusOr<pid_t> ForkDetached(const std::string& log_path) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  pid_t first = ::fork();
  if (first < 0) return ErrnoStatus(errno, "fork");
  if (first == 0) {
    ::close(report[0]);
    ::setsid();
    pid_t second = ::fork();
    if (second != 0) {
      ssize_t ignored = ::write(report[1], &second, sizeof(second));
      (void)ignored;
      ::_exit(second > 0 ? 0 : 1);
    }
    ::close(report[1]);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, STDIN_FILENO);
    int log_fd = OpenOutput(log_path, true);
    if (log_fd >= 0) {
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
    }
    return 0;
  }
  ::close(report[1]);
  pid_t detached = -1;
  ssize_t count = ::read(report[0], &detached, sizeof(detached));
  ::close(report[0]);
  ::waitpid(first, nullptr, 0);
  if (count != sizeof(detached) || detached <= 0) {
    return absl::InternalError("could not start a detached process");
  }
  return detached;
}

StatusOr<pid_t> SpawnDetached(const std::vector<std::string>& argv, const std::string& log_path,
                              int inherit_fd) {
  if (argv.empty()) return absl::InvalidArgumentError("spawn: empty command");
  std::vector<std::string> owned = argv;
  SP_ASSIGN_OR_RETURN(pid_t pid, ForkDetached(log_path));
  if (pid != 0) return pid;
  if (inherit_fd >= 0) ::fcntl(inherit_fd, F_SETFD, 0);
  std::vector<char*> args;
  args.reserve(owned.size() + 1);
  for (std::string& arg : owned) args.push_back(arg.data());
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  char text[256];
  std::fprintf(stderr, "cannot run %s: %s\n", args[0], ::strerror_r(errno, text, sizeof(text)));
  ::_exit(127);
}

StatusOr<std::string> SelfExecutable() {
  char path[PATH_MAX];
  ssize_t length = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
  if (length < 0) return ErrnoStatus(errno, "readlink /proc/self/exe");
  return std::string(path, static_cast<size_t>(length));
}

}  // namespace sp
