// Running the commands streamrestore is given (--on-checkpoint,
// --emulator-exec): /bin/sh -c CMD with extra environment variables and
// chosen standard streams.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>

namespace xenstream::restore {

struct SpawnOptions {
  std::string command;  // run as /bin/sh -c COMMAND
  std::vector<std::pair<std::string, std::string>> env;  // added to (or replacing) ours
  int stdin_fd = -1;    // -1: /dev/null
  int stdout_fd = -1;   // -1: keep ours
  int stderr_fd = -1;   // -1: keep ours
  // Descriptors the command inherits: {ours, its number} (after the
  // standard streams are set up).
  std::vector<std::pair<int, int>> pass_fds;
  bool new_session = false;   // setsid(): outlives our terminal's signals
};

// Starts the command and returns its pid.
Expected<pid_t> spawn_shell(const SpawnOptions& options);

// Waits for `pid`; returns its wait status (as from waitpid).
Expected<int> wait_process(pid_t pid);
// Non-blocking: the wait status if it has exited, nullopt if it runs.
Expected<std::optional<int>> poll_process(pid_t pid);

// "exited with status 3", "was killed by signal 9 (Killed)".
std::string describe_wait_status(int status);

// Runs a hook to completion: stdin /dev/null, stdout to our stderr (our
// stdout may be a protocol channel). Returns the wait status.
Expected<int> run_hook(const std::string& command,
                       const std::vector<std::pair<std::string, std::string>>& env);

}  // namespace xenstream::restore
