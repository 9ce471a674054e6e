// rss_probe PROGRAM ARGS...: runs PROGRAM with stdin/stdout inherited and
// prints its peak resident set size in KiB on stderr's last line; exits
// with its status. A small process of its own, so that the peak measured is
// the program's and not that of a large test process it was forked from.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const pid_t pid = fork();
  if (pid == 0) {
    execv(argv[1], argv + 1);
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  if (wait4(pid, &status, 0, &ru) != pid) return 2;
  std::fprintf(stderr, "maxrss_kib %ld\n", ru.ru_maxrss);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 2;
}
