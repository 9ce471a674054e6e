// A minimal QMP client (QEMU Machine Protocol: one JSON object per line over
// a unix socket), enough to drive a device model during emulator replay and
// in tests: connect, negotiate capabilities, run a command, skip events.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include <xenstream/libstream/error.h>
#include "tools/restore/fs_util.h"

namespace xenstream::restore {

class QmpClient {
 public:
  using Clock = std::chrono::steady_clock;

  // Connects to a listening QMP socket, reads the greeting and enters
  // command mode. kIo when nothing listens (yet) or the peer closes.
  static Expected<QmpClient> connect(const std::string& socket_path, Clock::time_point deadline);

  // Runs `command` and returns its "return" value. A QMP error reply is
  // kUnsupported with QEMU's class and description in the message.
  Expected<nlohmann::json> execute(const std::string& command,
                                   const nlohmann::json& arguments = nlohmann::json(),
                                   Clock::time_point deadline = Clock::now() + std::chrono::seconds(30));

  const nlohmann::json& greeting() const { return greeting_; }

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  Expected<nlohmann::json> read_message(Clock::time_point deadline);

  UniqueFd fd_;
  std::string buffer_;
  nlohmann::json greeting_;
};

}  // namespace xenstream::restore
