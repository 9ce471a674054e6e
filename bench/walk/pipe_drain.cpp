// pipe_drain: the fastest possible reader of a pipe, for bench/walk. It moves
// stdin to /dev/null with splice(2), never copying a byte into user memory,
// so `cat FILE | pipe_drain` measures what feeding the pipe alone costs: the
// ceiling of any reader of that pipe, however little work it does.
//
//   pipe_drain            (stdin must be a pipe)
//
// Prints the byte count on stderr; exit 0, or 2 when stdin is no pipe or a
// call fails.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

int main() {
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (null_fd < 0) {
    std::fprintf(stderr, "pipe_drain: /dev/null: %s\n", std::strerror(errno));
    return 2;
  }
  ::fcntl(0, F_SETPIPE_SZ, 1 << 20);  // as FdSource does; best effort
  unsigned long long total = 0;
  for (;;) {
    const ssize_t n = ::splice(0, nullptr, null_fd, nullptr, 1 << 20, SPLICE_F_MOVE);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "pipe_drain: splice: %s (is stdin a pipe?)\n", std::strerror(errno));
      return 2;
    }
    total += static_cast<unsigned long long>(n);
  }
  std::fprintf(stderr, "%llu bytes\n", total);
  return 0;
}
