// Emulator replay. With a real device model: QEMU (Debian's
// qemu-system-x86, 7.2) writes a genuine device-state blob through QMP
// `xen-save-devices-state`; it is wrapped in EMULATOR_CONTEXT, restored with
// --emulator-exec, and a second QEMU must report over QMP that it loaded it.
// A corrupted blob must be reported as a failed replay with QEMU's message.
// These tests do not skip: without QEMU they fail and say what to install.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/restore/stream_builder.h"
#include "tools/restore/process.h"
#include "tools/restore/qmp_client.h"

namespace xenstream::restore {
namespace {

using namespace testing;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The machine both QEMUs run: no devices beyond the board's own, paused.
const std::string kMachine = "-M pc -m 32 -nodefaults -S -display none";

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path ? path : "/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= p.size()) {
    const std::size_t end = p.find(':', start);
    const std::string dir = p.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const std::string full = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(full.c_str(), X_OK) == 0) return full;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return "";
}

std::string text_of(const std::string& path) {
  auto f = read_file(path);
  return f ? std::string(reinterpret_cast<const char*>(f->data()), f->size()) : "";
}

// Running and not a zombie (the device model outlives streamrestore, so
// whoever adopts it reaps it, maybe late).
bool alive(pid_t pid) {
  const std::string stat = text_of("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  return stat[close + 2] != 'Z' && stat[close + 2] != 'X';
}

void stop_group(pid_t pid) {
  ::kill(-pid, SIGKILL);
  for (int i = 0; i < 500 && alive(pid); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

Expected<QmpClient> connect_retry(const std::string& sock) {
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (;;) {
    auto c = QmpClient::connect(sock, deadline);
    if (c || Clock::now() > deadline) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// stderr without the rules' warnings (the real QEMU blob draws a QEVM-06
// warning), which these tests do not look at.
std::string without_warnings(const std::string& err) {
  std::string out;
  std::size_t at = 0;
  while (at < err.size()) {
    std::size_t nl = err.find('\n', at);
    nl = nl == std::string::npos ? err.size() : nl + 1;
    const std::string line = err.substr(at, nl - at);
    if (line.rfind("streamrestore: warning: ", 0) != 0) out += line;
    at = nl;
  }
  return out;
}

class EmulatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    qemu_ = find_in_path("qemu-system-x86_64");
    if (qemu_.empty()) return;
    // One genuine device-state blob for the whole suite.
    const std::string dir = temp_dir("qemu-save");
    const std::string sock = dir + "/qmp";
    const std::string out = dir + "/devices.qevm";
    SpawnOptions sp;
    // Footers off, as QEMU runs under Xen (the rules refuse footers: QEVM-07).
    sp.command = qemu_ + " " + kMachine + " -global migration.send-section-footer=off -qmp unix:" + sock +
                 ",server=on,wait=off";
    sp.new_session = true;
    const int log = ::open((dir + "/log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    sp.stdout_fd = log;
    sp.stderr_fd = log;
    auto pid = spawn_shell(sp);
    ::close(log);
    if (!pid) return;
    auto qmp = connect_retry(sock);
    if (qmp) {
      auto saved = qmp->execute("xen-save-devices-state", json{{"filename", out}, {"live", false}});
      if (!saved) blob_error_ = saved.error().message;
      (void)qmp->execute("quit");
    } else {
      blob_error_ = qmp.error().message + "; QEMU log: " + text_of(dir + "/log");
    }
    (void)wait_process(*pid);
    if (auto b = read_file(out)) blob_ = *b;
    remove_tree(dir);
  }

  void SetUp() override {
    root_ = temp_dir("emu");
    ASSERT_FALSE(qemu_.empty()) << "qemu-system-x86_64 not found in PATH: install Debian's qemu-system-x86 "
                                   "(.ci/run does)";
    ASSERT_FALSE(blob_.empty()) << "QEMU wrote no device state: " << blob_error_;
  }
  void TearDown() override { remove_tree(root_); }

  struct Result {
    int exit = -1;
    std::string out;
    std::string err;
  };
  Result run(const std::vector<std::string>& args) {
    const std::string out = root_ + "/.stdout";
    const std::string err = root_ + "/.stderr";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(::open("/dev/null", O_RDONLY), 0);
      ::dup2(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
      ::dup2(::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
      std::vector<char*> argv = {const_cast<char*>(STREAMRESTORE_PATH)};
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(STREAMRESTORE_PATH, argv.data());
      ::_exit(127);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    return Result{WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), text_of(out), text_of(err)};
  }

  // A plain HVM stream carrying `blob` as its emulator context.
  std::string stream_with(const std::vector<std::byte>& blob) {
    StreamSpec s;
    PartSpec p;
    p.pages = {{0, 1}, {1, 2}};
    p.hvm_context = hvm_context_blob(1, 1);
    p.emulator_context = blob;
    s.parts.push_back(p);
    const std::string path = root_ + "/stream";
    write_file(path, Bytes(build_stream(s).bytes));
    return path;
  }

  std::string loader() const {
    return qemu_ + " " + kMachine +
           " -global migration.send-configuration=off -global migration.send-section-footer=off -incoming fd:{fd} -qmp unix:{qmp},server=on,wait=off";
  }

  json manifest(const std::string& dir) {
    const std::string t = text_of(dir + "/manifest.json");
    return json::parse(t, nullptr, false);
  }

  static inline std::string qemu_;
  static inline std::vector<std::byte> blob_;
  static inline std::string blob_error_;
  std::string root_;
};

TEST_F(EmulatorTest, QemuWroteADeviceOnlyBlob) {
  ASSERT_GE(blob_.size(), 9u);
  // "QEVM", version 3, then a full device section (no RAM, no configuration).
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(blob_.data()), 4), "QEVM");
  EXPECT_EQ(blob_[7], std::byte{3});
  EXPECT_EQ(blob_[8], std::byte{0x04});
}

TEST_F(EmulatorTest, QemuLoadsTheReplayedContext) {
  const std::string out = root_ + "/d";
  const Result r = run({stream_with(blob_), "--out", out, "--emulator-exec", loader(), "--json"});
  ASSERT_EQ(r.exit, 0) << r.err;
  const json j = json::parse(r.out);
  ASSERT_TRUE(j["emulator_replay"]["ok"]);
  const pid_t pid = j["emulator_replay"]["pid"].get<int>();
  ASSERT_TRUE(alive(pid));

  const json m = manifest(out);
  EXPECT_EQ(m["emulator_replay"]["running"], true);
  EXPECT_EQ(m["emulator_replay"]["pid"], pid);
  EXPECT_EQ(m["emulator_replay"]["qmp"], out + "/qmp-libxl-1");
  EXPECT_EQ(m["emulator_replay"]["log"], out + "/emulator.log");
  EXPECT_NE(std::find(m["files"].begin(), m["files"].end(), "emulator.log"), m["files"].end());
  // The restore file the device model read is the blob, byte for byte.
  EXPECT_EQ(read_file(out + "/qemu-resume.1"), blob_);

  auto qmp = connect_retry(out + "/qmp-libxl-1");
  ASSERT_TRUE(qmp) << qmp.error().message;
  auto mig = qmp->execute("query-migrate");
  ASSERT_TRUE(mig) << mig.error().message;
  EXPECT_EQ((*mig)["status"], "completed") << mig->dump();
  auto st = qmp->execute("query-status");
  ASSERT_TRUE(st) << st.error().message;
  EXPECT_EQ((*st)["status"], "paused") << st->dump();
  (void)qmp->execute("quit");
  stop_group(pid);
  EXPECT_FALSE(alive(pid));
}

TEST_F(EmulatorTest, CorruptedContextIsAFailedReplayWithQemusMessage) {
  const std::vector<std::byte> cut(blob_.begin(), blob_.begin() + static_cast<long>(blob_.size() / 2));
  const std::string out = root_ + "/d";
  const Result r = run({stream_with(cut), "--out", out, "--emulator-exec", loader(), "--json"});
  EXPECT_EQ(r.exit, 4) << r.err;
  EXPECT_EQ(without_warnings(r.err).rfind("streamrestore: error: emulator replay failed: the device model ", 0), 0u)
      << r.err;
  // QEMU's own words (which section it failed on depends on where the cut fell).
  EXPECT_NE(r.err.find("qemu-system-x86_64: "), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("load of migration failed") != std::string::npos ||
              r.err.find("Failed to load") != std::string::npos)
      << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["status"], "replay-failed");
  EXPECT_EQ(j["exit"], 4);
  EXPECT_FALSE(j["emulator_replay"]["ok"]);
  EXPECT_TRUE(j["emulator_replay"]["pid"].is_null());
  // The restore itself is complete; the manifest records the refusal.
  const json m = manifest(out);
  EXPECT_EQ(m["status"], "complete");
  EXPECT_EQ(m["emulator_replay"]["ok"], false);
  EXPECT_NE(m["emulator_replay"]["message"].get<std::string>().find("load of migration failed"), std::string::npos);
  EXPECT_NE(text_of(out + "/emulator.log").find("load of migration failed"), std::string::npos);
}

TEST_F(EmulatorTest, OneShotCommandReadsTheFdItIsGiven) {
  const std::string out = root_ + "/d";
  const std::string copy = root_ + "/copy";
  const std::string cmd = "cat <&{fd} > " + copy +
                          " && test \"$XENSTREAM_EMULATOR_FD\" = {fd} && test \"$XENSTREAM_DOMID\" = {domid}"
                          " && cmp -s {file} " + copy;
  const Result r = run({stream_with(blob_), "--out", out, "--domid", "7", "--emulator-exec", cmd});
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(read_file(copy), blob_);
  EXPECT_EQ(manifest(out)["emulator_replay"]["running"], false);
}

TEST_F(EmulatorTest, OneShotFailureCarriesItsLog) {
  const std::string out = root_ + "/d";
  const Result r = run({stream_with(blob_), "--out", out, "--emulator-exec",
                        "echo 'refused: bad device state' >&2; exit 3"});
  EXPECT_EQ(r.exit, 4);
  EXPECT_EQ(without_warnings(r.err), "streamrestore: error: emulator replay failed: the device model exited with status 3; its log " +
                       out + "/emulator.log ends with:\nrefused: bad device state\n");
}

TEST_F(EmulatorTest, FailoverReplaysTheCommittedContext) {
  // Checkpoint 1 carries blob A, checkpoint 2 (cut short) blob B: the device
  // model must get A.
  StreamSpec s;
  s.checkpointed = true;
  PartSpec a;
  a.pages = {{0, 1}};
  a.hvm_context = hvm_context_blob(1, 1);
  a.emulator_context = blob_;
  PartSpec b = a;
  b.emulator_context = qemu_state_blob(0xBB, 100);
  s.parts = {a, b};
  const BuiltStream built = build_stream(s);
  const std::string path = root_ + "/stream";
  write_file(path, Bytes(built.bytes).first(built.commit_ends[1] - 8));
  const std::string out = root_ + "/d";
  const std::string copy = root_ + "/copy";
  const Result r = run({path, "--out", out, "--emulator-exec", "cat <&{fd} > " + copy});
  EXPECT_EQ(r.exit, 3) << r.err;
  EXPECT_EQ(read_file(copy), blob_);
  EXPECT_EQ(manifest(out)["status"], "failover");
}

TEST_F(EmulatorTest, DeviceModelThatNeverAnswersTimesOutAndIsKilled) {
  const std::string out = root_ + "/d";
  const std::string pidfile = root_ + "/dm.pid";
  // Serves no QMP on {qmp}; records its pid so we can see it was killed.
  const Result r = run({stream_with(blob_), "--out", out, "--emulator-timeout", "0.3", "--emulator-exec",
                        "echo $$ > " + pidfile + "; exec sleep 60 # {qmp}"});
  EXPECT_EQ(r.exit, 4);
  EXPECT_EQ(without_warnings(r.err), "streamrestore: error: emulator replay failed: the device model did not load the emulator "
                   "context within 0.3 s (QMP never answered) (its log " + out + "/emulator.log is empty)\n");
  const std::string pid_text = text_of(pidfile);
  ASSERT_FALSE(pid_text.empty());
  EXPECT_FALSE(alive(static_cast<pid_t>(std::stol(pid_text))));
}

TEST_F(EmulatorTest, NoContextMeansNoDeviceModel) {
  StreamSpec s;
  PartSpec p;
  p.pages = {{0, 1}};
  p.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p);
  const std::string path = root_ + "/stream";
  write_file(path, Bytes(build_stream(s).bytes));
  const Result r = run({path, "--out", root_ + "/d", "--emulator-exec", "touch " + root_ + "/ran"});
  EXPECT_EQ(r.exit, 0);
  EXPECT_EQ(r.err, "streamrestore: warning: --emulator-exec was given but the restored domain has no emulator "
                   "context; no device model was started\n");
  EXPECT_FALSE(read_file(root_ + "/ran"));
}

}  // namespace
}  // namespace xenstream::restore
