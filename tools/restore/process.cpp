#include "tools/restore/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace xenstream::restore {

namespace {

// The environment as "NAME=value" strings: ours, with `extra` replacing or
// adding variables.
std::vector<std::string> build_env(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string s = *e;
    const std::string name = s.substr(0, s.find('='));
    bool replaced = false;
    for (const auto& [k, v] : extra) replaced = replaced || k == name;
    if (!replaced) out.push_back(s);
  }
  for (const auto& [k, v] : extra) out.push_back(k + "=" + v);
  return out;
}

}  // namespace

Expected<pid_t> spawn_shell(const SpawnOptions& o) {
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls.
  const std::vector<std::string> env = build_env(o.env);
  std::vector<char*> envp;
  for (const auto& s : env) envp.push_back(const_cast<char*>(s.c_str()));
  envp.push_back(nullptr);
  const char* argv[] = {"sh", "-c", o.command.c_str(), nullptr};
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return io_error("cannot open /dev/null", errno);

  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    ::close(devnull);
    return io_error("cannot fork", err);
  }
  if (pid == 0) {
    if (o.new_session) ::setsid();
    // Restore default signal handling the child would otherwise inherit.
    ::signal(SIGPIPE, SIG_DFL);
    const int in = o.stdin_fd >= 0 ? o.stdin_fd : devnull;
    // dup2 onto the same number keeps O_CLOEXEC; clear it explicitly.
    auto place = [](int from, int to) {
      if (from == to) {
        const int flags = ::fcntl(from, F_GETFD);
        if (flags >= 0) ::fcntl(from, F_SETFD, flags & ~FD_CLOEXEC);
      } else {
        ::dup2(from, to);
      }
    };
    place(in, 0);
    if (o.stdout_fd >= 0) place(o.stdout_fd, 1);
    if (o.stderr_fd >= 0) place(o.stderr_fd, 2);
    for (const auto& [from, to] : o.pass_fds) place(from, to);
    ::execve("/bin/sh", const_cast<char* const*>(argv), envp.data());
    ::_exit(127);
  }
  ::close(devnull);
  return pid;
}

Expected<int> wait_process(pid_t pid) {
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, 0);
    if (r == pid) return status;
    if (r < 0 && errno == EINTR) continue;
    return io_error("waitpid " + std::to_string(pid) + " failed", errno);
  }
}

Expected<std::optional<int>> poll_process(pid_t pid) {
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return std::optional<int>(status);
    if (r == 0) return std::optional<int>();
    if (r < 0 && errno == EINTR) continue;
    return io_error("waitpid " + std::to_string(pid) + " failed", errno);
  }
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + (name ? std::string(" (") + name + ")" : "");
  }
  return "stopped with wait status " + std::to_string(status);
}

Expected<int> run_hook(const std::string& command,
                       const std::vector<std::pair<std::string, std::string>>& env) {
  SpawnOptions o;
  o.command = command;
  o.env = env;
  o.stdout_fd = 2;
  auto pid = spawn_shell(o);
  if (!pid) return std::move(pid).error();
  return wait_process(*pid);
}

}  // namespace xenstream::restore
