#include "tools/restore/emulator_replay.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <thread>

#include "tools/restore/fs_util.h"
#include "tools/restore/process.h"
#include "tools/restore/qmp_client.h"

namespace xenstream::restore {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

constexpr auto kPollInterval = std::chrono::milliseconds(20);
constexpr std::size_t kLogTail = 4096;

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) {
    s.replace(pos, from.size(), to);
  }
}

// The last few KiB of the device model's log, trimmed to whole lines.
std::string log_tail(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return "";
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return "";
  const auto size = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t from = size > kLogTail ? size - kLogTail : 0;
  std::string text(static_cast<std::size_t>(size - from), '\0');
  std::span<std::byte> buf(reinterpret_cast<std::byte*>(text.data()), text.size());
  if (!pread_all(fd.get(), buf, from, path)) return "";
  if (from > 0) {
    const auto nl = text.find('\n');
    if (nl != std::string::npos) text.erase(0, nl + 1);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string failure(const std::string& what, const std::string& log_path) {
  std::string msg = what;
  const std::string tail = log_tail(log_path);
  if (tail.empty()) {
    msg += " (its log " + log_path + " is empty)";
  } else {
    msg += "; its log " + log_path + " ends with:\n" + tail;
  }
  return msg;
}

void kill_group(pid_t pid) {
  ::kill(-pid, SIGKILL);
  ::kill(pid, SIGKILL);
  (void)wait_process(pid);
}

// A QMP socket path must fit in sun_path; a long DIR gets a private
// directory under $TMPDIR instead.
Expected<std::string> choose_socket(const std::string& wanted, std::uint32_t domid) {
  if (wanted.size() < sizeof(sockaddr_un{}.sun_path)) return wanted;
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/xenstream-qmp-XXXXXX";
  if (::mkdtemp(templ.data()) == nullptr) return io_error("cannot create a directory for the QMP socket", errno);
  std::string path = templ + "/qmp-libxl-" + std::to_string(domid);
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return make_error(ErrorCode::kUsage, 0, "no short enough path for the QMP socket; set TMPDIR");
  }
  return path;
}

std::string seconds_text(std::chrono::milliseconds ms) {
  const auto n = ms.count();
  std::string s = std::to_string(n / 1000);
  if (n % 1000 != 0) {
    std::string frac = std::to_string(1000 + n % 1000).substr(1);
    while (frac.back() == '0') frac.pop_back();
    s += "." + frac;
  }
  return s + " s";
}

}  // namespace

std::string expand_emulator_command(const std::string& command, int fd, const std::string& file,
                                    const std::string& qmp, std::uint32_t domid) {
  std::string s = command;
  replace_all(s, "{fd}", std::to_string(fd));
  replace_all(s, "{file}", shell_quote(file));
  replace_all(s, "{qmp}", shell_quote(qmp));
  replace_all(s, "{domid}", std::to_string(domid));
  return s;
}

Expected<ReplayRecord> replay_emulator(const ReplayOptions& o) {
  ReplayRecord rec;
  rec.command = o.command;
  rec.log_file = o.files.log_file;
  const bool uses_qmp = o.command.find("{qmp}") != std::string::npos;
  std::string qmp;
  if (uses_qmp) {
    auto path = choose_socket(o.files.qmp_socket, o.domid);
    if (!path) return std::move(path).error();
    qmp = *path;
    ::unlink(qmp.c_str());  // a stale socket from an earlier device model
    rec.qmp_socket = qmp;
  }

  UniqueFd blob(::open(o.files.restore_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!blob.valid()) return io_error("cannot open " + o.files.restore_file, errno);
  UniqueFd log(::open(o.files.log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644));
  if (!log.valid()) return io_error("cannot create " + o.files.log_file, errno);

  SpawnOptions sp;
  sp.command = expand_emulator_command(o.command, kEmulatorFd, o.files.restore_file, qmp, o.domid);
  sp.env = o.env;
  sp.env.emplace_back("XENSTREAM_EMULATOR_FD", std::to_string(kEmulatorFd));
  sp.env.emplace_back("XENSTREAM_EMULATOR_FILE", o.files.restore_file);
  if (uses_qmp) sp.env.emplace_back("XENSTREAM_EMULATOR_QMP", qmp);
  sp.env.emplace_back("XENSTREAM_DOMID", std::to_string(o.domid));
  sp.stdout_fd = log.get();
  sp.stderr_fd = log.get();
  sp.pass_fds = {{blob.get(), kEmulatorFd}};
  sp.new_session = true;
  auto spawned = spawn_shell(sp);
  if (!spawned) return std::move(spawned).error();
  const pid_t pid = *spawned;
  blob.reset();
  log.reset();
  rec.pid = pid;
  const auto deadline = Clock::now() + o.timeout;
  const std::string timeout_text = seconds_text(o.timeout);

  if (!uses_qmp) {
    for (;;) {
      auto st = poll_process(pid);
      if (!st) return std::move(st).error();
      if (st->has_value()) {
        const int status = **st;
        rec.pid.reset();
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
          rec.ok = true;
          return rec;
        }
        rec.message = failure("the device model " + describe_wait_status(status), rec.log_file);
        return rec;
      }
      if (Clock::now() >= deadline) {
        kill_group(pid);
        rec.pid.reset();
        rec.message = failure("the device model did not finish within " + timeout_text, rec.log_file);
        return rec;
      }
      std::this_thread::sleep_for(kPollInterval);
    }
  }

  // QMP: wait for the socket, then for the incoming migration to settle.
  std::optional<QmpClient> client;
  std::string last_status;
  for (;;) {
    auto st = poll_process(pid);
    if (!st) return std::move(st).error();
    if (st->has_value()) {
      rec.pid.reset();
      rec.message = failure("the device model " + describe_wait_status(**st) +
                                " before it had loaded the emulator context",
                            rec.log_file);
      return rec;
    }
    if (Clock::now() >= deadline) {
      kill_group(pid);
      rec.pid.reset();
      rec.message = failure("the device model did not load the emulator context within " +
                                timeout_text +
                                (last_status.empty() ? std::string(" (QMP never answered)")
                                                     : " (last migration status \"" + last_status + "\")"),
                            rec.log_file);
      return rec;
    }
    if (!client) {
      auto c = QmpClient::connect(qmp, deadline);
      if (c) client.emplace(std::move(c).value());
    }
    if (client) {
      auto r = client->execute("query-migrate", json(), deadline);
      if (!r) {
        // The peer went away (typically: QEMU refused the state and exited);
        // the next round reports its exit.
        client.reset();
      } else {
        auto s = r->find("status");
        last_status = (s != r->end() && s->is_string()) ? s->get<std::string>() : "";
        if (last_status == "completed") {
          rec.ok = true;
          rec.running = true;
          return rec;
        }
        if (last_status == "failed") {
          kill_group(pid);
          rec.pid.reset();
          std::string why = "the device model reports the incoming migration \"failed\"";
          if (auto e = r->find("error-desc"); e != r->end() && e->is_string()) {
            why += ": " + e->get<std::string>();
          }
          rec.message = failure(why, rec.log_file);
          return rec;
        }
      }
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

}  // namespace xenstream::restore
