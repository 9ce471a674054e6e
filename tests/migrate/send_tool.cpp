// Test sender for the xl migrate protocol: runs RUNE with `sh -c` as xl
// migrate does (its stdin carries our data, its stdout the receiver's
// replies), then speaks the sender side with the xl save image in FILE.
//   send_tool [-r] FILE RUNE
// -r: Remus mode, stream only; with XS_SEND_CUT=N only the first N octets
// are sent and the sender then dies (SIGKILL), as a failing primary.
// Exit: 0 and "status N" on stdout when the receiver answered, 1 otherwise.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <xenstream/libstream/sink.h>
#include <xenstream/libstream/source.h>
#include "tools/migrate/xl_migrate.h"

using namespace xenstream;

int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  int i = 1;
  bool remus = false;
  if (i < argc && std::strcmp(argv[i], "-r") == 0) {
    remus = true;
    ++i;
  }
  if (argc - i != 2) {
    std::cerr << "usage: send_tool [-r] FILE RUNE\n";
    return 2;
  }
  const std::string file = argv[i], rune = argv[i + 1];
  auto mapped = MappedFile::open(file);
  if (!mapped) {
    std::cerr << "send_tool: " << mapped.error().message << "\n";
    return 2;
  }
  auto all = (*mapped)->peek(SIZE_MAX);
  if (!all) return 2;
  const Bytes image = *all;
  std::size_t cut = image.size();
  if (const char* c = std::getenv("XS_SEND_CUT")) cut = std::min<std::size_t>(cut, std::strtoull(c, nullptr, 0));

  int to[2], from[2];
  if (::pipe2(to, O_CLOEXEC) != 0 || ::pipe2(from, O_CLOEXEC) != 0) return 2;
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(to[0], 0);
    ::dup2(from[1], 1);
    ::execl("/bin/sh", "sh", "-c", rune.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(to[0]);
  ::close(from[1]);
  auto st = migrate::run_xl_migrate_sender(
      from[0], to[1],
      [&](int fd) -> Expected<void> {
        FdSink sink(fd, "<receiver>");
        XS_TRY(sink.write(image.subspan(0, cut)));
        if (cut < image.size()) ::kill(::getpid(), SIGKILL);  // the primary dies
        return sink.flush();
      },
      remus);
  ::close(to[1]);  // remus: the primary goes away once its stream is sent
  int wst = 0;
  ::waitpid(pid, &wst, 0);
  if (!st) {
    std::cerr << "send_tool: " << st.error().describe() << "\n";
    return 1;
  }
  std::cout << "status " << static_cast<int>(*st) << "\n";
  return 0;
}
