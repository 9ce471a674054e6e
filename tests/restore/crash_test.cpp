// Crash safety: streamrestore is killed with SIGKILL in the middle of
// checkpoint commits, then the directory is recovered and must hold exactly
// one complete checkpoint, never a mix. Two kinds of kill:
//   - at every named commit step of every checkpoint (XENSTREAM_TEST_KILL_AT)
//   - at random instants while a larger checkpointed stream is restored
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/restore/stream_builder.h"

namespace xenstream::restore {
namespace {

using namespace testing;
using nlohmann::json;

// Runs streamrestore with `args`, stdin from `input`; returns the pid.
pid_t start_restore(const std::vector<std::string>& args, const std::string& input,
                    const std::vector<std::string>& env = {}) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int in = ::open(input.c_str(), O_RDONLY);
    ::dup2(in, 0);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    for (const auto& e : env) ::putenv(const_cast<char*>(e.c_str()));
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(STREAMRESTORE_PATH));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(STREAMRESTORE_PATH, argv.data());
    ::_exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

// Recovers `dir` and returns the checkpoint it holds (0: nothing restored).
std::uint64_t recover_and_check(const std::string& dir, const BuiltStream& b) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return 0;  // killed before it made DIR
  auto rec = recover_directory(dir);
  EXPECT_TRUE(rec) << rec.error().message;
  if (!rec) return ~0ull;
  if (!rec->has_manifest) {
    EXPECT_TRUE(list_dir(dir).empty()) << "no manifest but files left";
    return 0;
  }
  const std::uint64_t k = rec->checkpoints.value_or(~0ull);
  EXPECT_GE(k, 1u);
  EXPECT_LE(k, b.models.size());
  if (k >= 1 && k <= b.models.size()) {
    EXPECT_EQ(compare_dir(dir, b.models[k - 1], true), "") << "at checkpoint " << k;
  }
  return k;
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = temp_dir("crash"); }
  void TearDown() override { remove_tree(root_); }
  std::string root_;
};

TEST_F(CrashTest, KillAtEveryCommitStepOfEveryCheckpoint) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(4));
  const std::string input = root_ + "/stream";
  write_file(input, Bytes(b.bytes));
  for (std::uint64_t k = 1; k <= 4; ++k) {
    for (std::string_view step : kCommitSteps) {
      // --fsync changes which calls a commit makes, not their order: one
      // checkpoint with it is enough to cover its code.
      for (bool durable : {false, true}) {
        if (durable && k != 2) continue;
        SCOPED_TRACE("checkpoint " + std::to_string(k) + " step " + std::string(step) +
                     (durable ? " --fsync" : ""));
        const std::string dir = root_ + "/out";
        std::vector<std::string> args = {"-q", "-", "--out", dir};
        if (durable) args.push_back("--fsync");
        const pid_t pid = start_restore(args, input,
                                        {"XENSTREAM_TEST_KILL_AT=" + std::to_string(k) + ":" + std::string(step)});
        const int st = wait_status(pid);
        ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "status " << st;
        // Before recovery a reader sees the restore as unfinished.
        ASSERT_TRUE(read_file(dir + "/.xenstream/lock").has_value());
        const std::uint64_t got = recover_and_check(dir, b);
        // Up to the commit point the previous checkpoint stands; from the
        // journal on, the new one.
        const bool past_commit_point = step != "staged" && step != "journal-tmp";
        EXPECT_EQ(got, past_commit_point ? k : k - 1);
        // Recovery is idempotent.
        auto again = recover_directory(dir);
        ASSERT_TRUE(again);
        EXPECT_EQ(again->action, RecoveryReport::Action::kNone);
        remove_tree(dir);
      }
    }
  }
}

TEST_F(CrashTest, KillAtRandomInstants) {
  // Enough checkpoints and pages that commits take a good share of the run.
  StreamSpec s;
  s.checkpointed = true;
  s.end = true;
  PartSpec p0;
  for (std::uint64_t pfn = 0; pfn < 64; ++pfn) p0.pages.push_back({pfn, 1});
  p0.batch = 16;
  p0.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p0);
  for (unsigned k = 1; k < 30; ++k) {
    PartSpec p;
    for (std::uint64_t pfn = k % 8; pfn < 64; pfn += 2) p.pages.push_back({pfn, 100 + k});
    p.batch = 8;
    p.hvm_context = hvm_context_blob(1, static_cast<std::uint8_t>(k));
    p.hvm_params = {{1, k}};
    s.parts.push_back(p);
  }
  const BuiltStream b = build_stream(s);
  const std::string input = root_ + "/stream";
  write_file(input, Bytes(b.bytes));
  // One hook log per trial: a hook of a killed run may still be appending
  // to its own log after the next trial has started.
  const std::string hook_logs = root_ + "/hooks-";

  // How long a whole run takes, to spread the kills over it.
  const std::string probe = root_ + "/probe";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(WEXITSTATUS(wait_status(start_restore({"-q", "-", "--out", probe}, input))), 0);
  const auto run_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  remove_tree(probe);

  std::mt19937 rng(20240611);
  int landed_mid_run = 0;
  for (int trial = 0; trial < 16; ++trial) {
    const std::string dir = root_ + "/out";
    const std::string hook_log = hook_logs + std::to_string(trial);
    const pid_t pid = start_restore(
        {"-q", "-", "--out", dir, "--on-checkpoint", "echo $XENSTREAM_CHECKPOINT >> " + hook_log},
        input);
    std::uniform_int_distribution<long> delay(0, std::max<long>(1, static_cast<long>(run_us)));
    std::this_thread::sleep_for(std::chrono::microseconds(delay(rng)));
    ::kill(pid, SIGKILL);
    const int st = wait_status(pid);
    const bool killed = WIFSIGNALED(st);
    landed_mid_run += killed ? 1 : 0;
    // The last hook that ran saw checkpoint h committed: the directory is at
    // h or at the one commit after it that may have been under way.
    std::uint64_t last_hook = 0;
    if (auto log = read_file(hook_log)) {
      std::string text(reinterpret_cast<const char*>(log->data()), log->size());
      std::istringstream in(text);
      for (std::uint64_t n; in >> n;) last_hook = n;
    }
    const std::uint64_t got = recover_and_check(dir, b);
    SCOPED_TRACE("trial " + std::to_string(trial));
    if (!killed) {
      EXPECT_EQ(got, b.models.size());
    } else {
      EXPECT_GE(got, last_hook);
      EXPECT_LE(got, last_hook + 1);
    }
    remove_tree(dir);
  }
  // Most kills must land while the restore runs, or the test proves little.
  EXPECT_GE(landed_mid_run, 8);
}

TEST_F(CrashTest, OpeningAnInterruptedDirectoryFinishesTheCommit) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  const std::string input = root_ + "/stream";
  write_file(input, Bytes(b.bytes));
  const std::string dir = root_ + "/out";
  const int st = wait_status(start_restore({"-q", "-", "--out", dir}, input, {"XENSTREAM_TEST_KILL_AT=2:pages-half"}));
  ASSERT_TRUE(WIFSIGNALED(st));
  // A new restore into it is refused until it is recovered.
  const int again = wait_status(start_restore({"-q", "-", "--out", dir}, input));
  EXPECT_TRUE(WIFEXITED(again) && WEXITSTATUS(again) == 2) << again;
  auto m = open_restored_directory(dir);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ((*m)["checkpoints"]["committed"], 2);
  EXPECT_EQ((*m)["status"], "in-progress");
  EXPECT_EQ(compare_dir(dir, b.models[1], true), "");
}

TEST_F(CrashTest, RecoveryRefusesARunningRestore) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(2));
  const std::string dir = root_ + "/out";
  // Hold the restore inside its first hook until we have tried recovery.
  const std::string gate = root_ + "/gate";
  const std::string input = root_ + "/stream";
  write_file(input, Bytes(b.bytes));
  const pid_t pid = start_restore(
      {"-q", "-", "--out", dir, "--on-checkpoint", "while [ ! -e " + gate + " ]; do sleep 0.01; done"}, input);
  // Wait for the first commit (manifest present) while the hook blocks.
  for (int i = 0; i < 2000 && !read_file(dir + "/manifest.json"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto rec = recover_directory(dir);
  ASSERT_FALSE(rec);
  EXPECT_EQ(rec.error().code, ErrorCode::kUsage);
  EXPECT_EQ(rec.error().message, dir + ": a restore into this directory is still running");
  write_file(gate, Bytes());
  const int st = wait_status(pid);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  EXPECT_EQ(compare_dir(dir, b.final_model, true), "");
}

}  // namespace
}  // namespace xenstream::restore
