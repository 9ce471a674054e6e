#include "feeder.h"

#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

namespace xenstream::testing {

Feeder::Feeder(std::span<const std::byte> data, std::size_t piece, Kind kind, unsigned pause_us)
    : data_(data.begin(), data.end()), piece_(std::max<std::size_t>(piece, 1)), pause_us_(pause_us) {
  // A reader that stops early closes its end; the writer then gets EPIPE.
  signal(SIGPIPE, SIG_IGN);
  int fds[2];
  if (kind == Kind::kPipe) {
    if (pipe(fds) != 0) std::abort();
  } else {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  }
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  writer_ = std::thread([this] { run(); });
}

void Feeder::run() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::size_t at = 0;
  while (at < data_.size()) {
    const std::size_t n = std::min(piece_, data_.size() - at);
    const ssize_t w = ::write(write_fd_, data_.data() + at, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      break;  // the reader went away
    }
    at += static_cast<std::size_t>(w);
    if (pause_us_ > 0) usleep(pause_us_);
  }
  ::close(write_fd_);
}

Feeder::~Feeder() {
  ::close(read_fd_);
  writer_.join();
}

}  // namespace xenstream::testing
