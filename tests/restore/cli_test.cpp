// streamrestore as a program: exit statuses, messages, --json, --recover,
// compressed input and stdin.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <xenstream/codecs/zstd/zstd_sink.h>
#include "tests/restore/stream_builder.h"

namespace xenstream::restore {
namespace {

using namespace testing;
using nlohmann::json;

struct CliRun {
  int exit = -1;
  std::string out;
  std::string err;
};

std::string text_of(const std::string& path) {
  auto f = read_file(path);
  return f ? std::string(reinterpret_cast<const char*>(f->data()), f->size()) : "";
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = temp_dir("cli"); }
  void TearDown() override { remove_tree(root_); }

  CliRun run(const std::vector<std::string>& args, const std::string& stdin_path = "/dev/null") {
    const std::string out = root_ + "/.stdout";
    const std::string err = root_ + "/.stderr";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(::open(stdin_path.c_str(), O_RDONLY), 0);
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
    CliRun r;
    r.exit = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = text_of(out);
    r.err = text_of(err);
    ::unlink(out.c_str());
    ::unlink(err.c_str());
    return r;
  }
  std::string file(const std::string& name, Bytes data) {
    const std::string p = root_ + "/" + name;
    write_file(p, data);
    return p;
  }
  std::string root_;
};

TEST_F(CliTest, CompleteRestoreIsSilentAndExitsZero) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::string in = file("s", Bytes(b.bytes));
  const CliRun r = run({in, "--out", root_ + "/d"});
  EXPECT_EQ(r.exit, 0) << r.err;
  // The one remark is the rules' warning, printed as streamverify prints it:
  // the stream ends with END after its checkpoints, which Xen's saver never
  // writes.
  EXPECT_EQ(r.err.rfind("streamrestore: warning: offset 0x", 0), 0u) << r.err;
  EXPECT_NE(r.err.find(", record #"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" END: END in a checkpointed stream"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.substr(r.err.size() - 16), "[LIBXC-CKPT-04]\n") << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(compare_dir(root_ + "/d", b.final_model, true), "");
  const CliRun q = run({in, "--out", root_ + "/q", "-q"});
  EXPECT_EQ(q.exit, 0) << q.err;
  EXPECT_EQ(q.err, "");
}

TEST_F(CliTest, StdinAndJsonOutcome) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::string in = file("s", Bytes(b.bytes));
  const CliRun r = run({"-", "-o", root_ + "/d", "--json"}, in);
  ASSERT_EQ(r.exit, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["status"], "complete");
  EXPECT_EQ(j["exit"], 0);
  EXPECT_EQ(j["checkpoints"], 3);
  EXPECT_EQ(j["checkpointed"], true);
  EXPECT_EQ(j["bytes"], b.bytes.size());
}

TEST_F(CliTest, ZstdCompressedInput) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(2));
  BufferSink packed;
  {
    codecs::ZstdSink z(packed, 3);
    ASSERT_TRUE(z.write(Bytes(b.bytes)));
    ASSERT_TRUE(z.flush());
  }
  const std::string in = file("s.zst", Bytes(packed.data()));
  const CliRun r = run({"-", "--out", root_ + "/d"}, in);
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(compare_dir(root_ + "/d", b.final_model, true), "");
  auto m = read_file(root_ + "/d/manifest.json");
  EXPECT_EQ(json::parse(m->begin(), m->end())["source"]["compressed"], true);
}

TEST_F(CliTest, FailoverExitsThreeAndSaysWhichCheckpoint) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::size_t cut = b.commit_ends[1] + 20;
  const std::string in = file("s", Bytes(b.bytes).first(cut));
  const CliRun r = run({"-", "--out", root_ + "/d"}, in);
  EXPECT_EQ(r.exit, 3);
  // The rules' warning (the stream ends inside checkpoint 3), then the outcome.
  EXPECT_EQ(r.err.rfind("streamrestore: warning: offset " + hex(cut) + ", input: the stream ends inside checkpoint 3", 0),
            0u)
      << r.err;
  EXPECT_NE(r.err.find("\nstreamrestore: failover: " + root_ + "/d holds checkpoint 2; the stream stopped: <stdin>: offset " +
                       hex(cut) + ": "),
            std::string::npos)
      << r.err;
  EXPECT_EQ(compare_dir(root_ + "/d", b.models[1], true), "");
}

TEST_F(CliTest, BrokenBeforeTheFirstCheckpointExitsOneAndLeavesNothing) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::size_t cut = b.commit_ends[0] - 1;
  const std::string in = file("s", Bytes(b.bytes).first(cut));
  const CliRun r = run({in, "--out", root_ + "/d"});
  EXPECT_EQ(r.exit, 1);
  EXPECT_NE(r.err.find("(before the first checkpoint was complete; nothing restored)"), std::string::npos) << r.err;
  struct stat st {};
  EXPECT_NE(::stat((root_ + "/d").c_str(), &st), 0);
}

// issue 6, resource bounds: a stream that claims more memory than allowed
// fails before anything is written for it.
TEST_F(CliTest, MaxMemoryRefusesPagesAboveItBeforeWritingThem) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::string in = file("s", Bytes(b.bytes));
  const CliRun small = run({in, "--out", root_ + "/d", "--max-memory", "4K"});
  EXPECT_EQ(small.exit, 1) << small.err;
  EXPECT_NE(small.err.find("is above the highest pfn accepted, 0x0"), std::string::npos) << small.err;
  struct stat st {};
  EXPECT_NE(::stat((root_ + "/d").c_str(), &st), 0);
  const CliRun big = run({in, "--out", root_ + "/e", "--max-memory", "1G"});
  EXPECT_EQ(big.exit, 0) << big.err;
  const CliRun bad = run({in, "--out", root_ + "/f", "--max-memory", "12"});
  EXPECT_EQ(bad.exit, 2) << bad.err;
}

TEST_F(CliTest, NotAStreamExitsOne) {
  const std::string in = file("junk", Bytes(reinterpret_cast<const std::byte*>("hello, world, not a stream"), 26));
  const CliRun r = run({in, "--out", root_ + "/d"});
  EXPECT_EQ(r.exit, 1);
  EXPECT_EQ(r.err.rfind("streamrestore: error: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("legacy"), std::string::npos) << r.err;
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run({}).exit, 2);
  EXPECT_EQ(run({"x"}).exit, 2);
  EXPECT_EQ(run({"--out", root_ + "/d"}).exit, 2);
  EXPECT_EQ(run({"x", "--out", root_ + "/d", "--format", "bogus"}).exit, 2);
  const CliRun missing = run({root_ + "/missing", "--out", root_ + "/d"});
  EXPECT_EQ(missing.exit, 2);
  EXPECT_EQ(missing.err, "streamrestore: error: cannot open " + root_ + "/missing: No such file or directory\n");
  // A non-empty output directory is refused before anything is written.
  const BuiltStream b = build_stream(small_checkpointed_hvm(1));
  const std::string in = file("s", Bytes(b.bytes));
  ASSERT_EQ(::mkdir((root_ + "/full").c_str(), 0755), 0);
  file("full/keep", Bytes());
  const CliRun full = run({in, "--out", root_ + "/full"});
  EXPECT_EQ(full.exit, 2);
  EXPECT_EQ(list_dir(root_ + "/full"), std::vector<std::string>{"keep"});
  EXPECT_EQ(run({"--help"}).exit, 0);
}

TEST_F(CliTest, ProgressOnATerminalOnly) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::string in = file("s", Bytes(b.bytes));
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const std::string out = root_ + "/d";
    ::execl(STREAMRESTORE_PATH, STREAMRESTORE_PATH, in.c_str(), "--out", out.c_str(), nullptr);
    ::_exit(127);
  }
  std::string tty;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the child has exited
    tty.append(buf, static_cast<std::size_t>(n));
  }
  int st = 0;
  ::waitpid(pid, &st, 0);
  ::close(master);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  // The last progress line: all bytes, every page, the last checkpoint.
  EXPECT_NE(tty.find("streamrestore: "), std::string::npos) << tty;
  EXPECT_NE(tty.find(" pages ("), std::string::npos) << tty;
  EXPECT_NE(tty.find("pages/s), checkpoint 3"), std::string::npos) << tty;
  // -q silences it even on a terminal.
  remove_tree(root_ + "/d");
  const pid_t quiet = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (quiet == 0) {
    const std::string out = root_ + "/d";
    ::execl(STREAMRESTORE_PATH, STREAMRESTORE_PATH, "-q", in.c_str(), "--out", out.c_str(), nullptr);
    ::_exit(127);
  }
  tty.clear();
  for (;;) {
    const ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;
    tty.append(buf, static_cast<std::size_t>(n));
  }
  ::waitpid(quiet, &st, 0);
  ::close(master);
  EXPECT_EQ(tty, "");
}

TEST_F(CliTest, FormatHintIsObeyed) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(1));
  const std::string in = file("s", Bytes(b.bytes));
  const CliRun wrong = run({in, "--out", root_ + "/d", "--format", "xl"});
  EXPECT_EQ(wrong.exit, 1);
  // Named as streamverify --format xl names it.
  EXPECT_EQ(wrong.err, "streamrestore: error: " + in +
                           ": offset 0x0, xl header: the input does not start with the xl save magic "
                           "[CONT-XL-01] (nothing restored)\n");
  EXPECT_EQ(run({in, "--out", root_ + "/d", "--format", "libxl"}).exit, 0);
}

TEST_F(CliTest, RecoverReportsWhatItDid) {
  const std::string d = root_ + "/d";
  ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
  CliRun r = run({"--recover", d, "--json"});
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"action":"none","restored":false,"status":"","checkpoints":null})"));
  // A restore killed before anything committed leaves only .xenstream/.
  ASSERT_EQ(::mkdir((d + "/.xenstream").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((d + "/.xenstream/stage").c_str(), 0755), 0);
  file("d/.xenstream/stage/memory.raw", Bytes());
  r = run({"--recover", d});
  ASSERT_EQ(r.exit, 0);
  EXPECT_EQ(r.err, "streamrestore: " + d + ": holds no restored domain (dropped-staging)\n");
  EXPECT_TRUE(list_dir(d).empty());
  EXPECT_EQ(run({"--recover", d, "x"}).exit, 2);
}

}  // namespace
}  // namespace xenstream::restore
