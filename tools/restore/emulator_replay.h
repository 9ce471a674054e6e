// Emulator replay: hand the committed emulator context to a device model the
// way libxl does for upstream QEMU, which it starts with `-incoming fd:N`
// where N is an open descriptor on the device-model restore file
// (tools/restore/README.md, "Emulator replay").
//
// The command runs as `/bin/sh -c CMD` in a session of its own, with stdin
// from /dev/null and stdout and stderr appended to the log file. Before it
// runs, these placeholders in CMD are replaced (paths shell-quoted):
//   {fd}     3: the command inherits a read-only descriptor on the restore
//            file, at offset 0, as its descriptor 3 (a single digit, so
//            that even dash's `<&3` can use it)
//   {file}   path of the restore file
//   {qmp}    path of a unix socket the command must serve QMP on
//   {domid}  the domain id
// and the environment carries XENSTREAM_EMULATOR_FD, XENSTREAM_EMULATOR_FILE,
// XENSTREAM_EMULATOR_QMP (when {qmp} is used) and XENSTREAM_DOMID.
//
// How the outcome is decided:
//   CMD uses {qmp}: the device model is expected to keep running. Replay
//     succeeds when QMP `query-migrate` reports "completed"; it fails when
//     it reports "failed", when the device model exits, or at the timeout.
//     On success the device model is left running (its process group id is
//     reported); on failure it is killed.
//   otherwise: the command is a one-shot loader; exit status 0 is success.
// A failure's message carries the end of the device model's log, where
// QEMU writes why it refused the state.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include "tools/restore/backend.h"

namespace xenstream::restore {

inline constexpr int kEmulatorFd = 3;

struct ReplayOptions {
  std::string command;
  EmulatorFiles files;
  std::uint32_t domid = 1;
  std::chrono::milliseconds timeout{60000};
  std::vector<std::pair<std::string, std::string>> env;  // extra variables
};

// Substitutes the placeholders of `command`.
std::string expand_emulator_command(const std::string& command, int fd, const std::string& file,
                                    const std::string& qmp, std::uint32_t domid);

// Runs the replay. The returned record says whether the device model took
// the state (ok) and why not (message). An Error means streamrestore could
// not do its own part (open the file, start the command).
Expected<ReplayRecord> replay_emulator(const ReplayOptions& options);

}  // namespace xenstream::restore
