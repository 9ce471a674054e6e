// Restoring from a pipe, where page data moves from the input straight into
// memory.raw or the staged pages (splice(2)) instead of through user space:
// the restored directory is the one a restore from memory leaves (holes for
// zero pages included), the pages the rules read (PV page tables) still
// pass through user space, and a stream cut inside its pages stops at the
// same offset as from memory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include <nlohmann/json.hpp>

#include <xenstream/libstream/format/libxc.h>
#include "tests/restore/stream_builder.h"

namespace xenstream::restore {
namespace {

using namespace testing;
namespace xc = format::libxc;

class PipeRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = temp_dir("pipe"); }
  void TearDown() override { remove_tree(root_); }
  std::string dir(const std::string& name) { return root_ + "/" + name; }
  std::string root_;
};

std::string describe(const RestoreReport& r) { return r.error ? r.error->describe() : "(no error)"; }

// 3000 HVM pages in batches of 1024 (Xen's largest), with zero pages and
// runs broken by gaps, so that a batch is several transfers.
StreamSpec big_hvm() {
  StreamSpec s;
  PartSpec p;
  for (std::uint64_t pfn = 0; pfn < 3000; ++pfn) {
    if (pfn % 97 == 5) continue;  // a gap: a new run
    p.pages.push_back({pfn, pfn % 13 == 0 ? 0u : static_cast<std::uint32_t>(pfn + 1)});
  }
  p.batch = 1024;
  p.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p);
  return s;
}

TEST_F(PipeRestoreTest, HvmPagesBypassUserSpaceAndLandTheSame) {
  const BuiltStream b = build_stream(big_hvm());
  const RestoreReport mem = restore_bytes(Bytes(b.bytes), dir("mem"));
  ASSERT_EQ(mem.status, RestoreStatus::kComplete) << describe(mem);
  for (std::size_t piece : {std::size_t{0}, std::size_t{4097}}) {
    const std::string out = dir("pipe" + std::to_string(piece));
    std::uint64_t bypassed = 0;
    const RestoreReport r = restore_pipe(Bytes(b.bytes), out, {}, {}, piece, &bypassed);
    ASSERT_EQ(r.status, RestoreStatus::kComplete) << describe(r);
    EXPECT_EQ(r.pages, mem.pages);
    EXPECT_EQ(r.bytes, b.bytes.size());
    EXPECT_EQ(compare_dir(out, b.final_model, true), "");
    // Every data page went from the pipe to memory.raw inside the kernel.
    EXPECT_EQ(bypassed, r.pages * xc::kPageSize);
    EXPECT_EQ(read_file(out + "/memory.raw"), read_file(dir("mem") + "/memory.raw"));
    EXPECT_EQ(read_file(out + "/manifest.json").has_value(), true);
  }
}

TEST_F(PipeRestoreTest, ZeroPagesNeverWrittenStayHoles) {
  StreamSpec s;
  PartSpec p;
  for (std::uint64_t pfn = 0; pfn < 256; ++pfn) p.pages.push_back({pfn, 0});
  p.pages.push_back({1000, 7});
  p.pages.push_back({4, 9});  // data over a hole: written
  p.pages.push_back({4, 0});  // zeros over that data: written as zeros
  p.batch = 64;
  p.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p);
  const BuiltStream b = build_stream(s);
  std::uint64_t bypassed = 0;
  const RestoreReport r = restore_pipe(Bytes(b.bytes), dir("out"), {}, {}, 0, &bypassed);
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << describe(r);
  EXPECT_EQ(bypassed, 259u * xc::kPageSize);
  EXPECT_EQ(compare_dir(dir("out"), b.final_model, true), "");
  struct stat st {};
  ASSERT_EQ(::stat((dir("out") + "/memory.raw").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1001 * 4096);
  // Only the data pages take space (allow file-system granularity).
  EXPECT_LE(st.st_blocks * 512, 64 * 1024);
}

// Fresh pages are looked at before they are written, a relay round (1 MiB,
// 256 pages) at a time: zero pages on both sides of a round's boundary and
// at a record's ends become holes, and a page whose first octets are zero
// but not its last is written.
TEST_F(PipeRestoreTest, LookedAtRunsFindEveryZeroPageAndNoOther) {
  const std::set<std::uint64_t> zeros{0, 255, 256, 511, 512, 513, 1023, 1099};
  const std::set<std::uint64_t> tails{3, 600, 1024};
  StreamSpec s;
  PartSpec p;
  for (std::uint64_t pfn = 0; pfn < 1100; ++pfn) {
    p.pages.push_back({pfn, zeros.count(pfn) ? 0u : tails.count(pfn) ? kTailOnlySeed : 7u});
  }
  p.batch = 1024;
  p.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p);
  const BuiltStream b = build_stream(s);
  const RestoreReport mem = restore_bytes(Bytes(b.bytes), dir("mem"));
  ASSERT_EQ(mem.status, RestoreStatus::kComplete) << describe(mem);
  std::uint64_t bypassed = 0;
  const RestoreReport r = restore_pipe(Bytes(b.bytes), dir("out"), {}, {}, 0, &bypassed);
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << describe(r);
  EXPECT_EQ(bypassed, 1100u * xc::kPageSize);
  EXPECT_EQ(compare_dir(dir("out"), b.final_model, true), "");
  EXPECT_EQ(read_file(dir("out") + "/memory.raw"), read_file(dir("mem") + "/memory.raw"));
  const int fd = ::open((dir("out") + "/memory.raw").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (std::uint64_t pfn = 0; pfn < 1100; ++pfn) {
    const off_t at = static_cast<off_t>(pfn * xc::kPageSize);
    const bool hole = ::lseek(fd, at, SEEK_HOLE) == at;
    EXPECT_EQ(hole, zeros.count(pfn) == 1) << "pfn " << pfn;
  }
  ::close(fd);
}

TEST_F(PipeRestoreTest, CheckpointsStageTheirPagesFromThePipe) {
  StreamSpec s = small_checkpointed_hvm(4);
  const BuiltStream b = build_stream(s);
  std::uint64_t bypassed = 0;
  const RestoreReport r = restore_pipe(Bytes(b.bytes), dir("out"), {}, {}, 333, &bypassed);
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << describe(r);
  EXPECT_EQ(r.checkpoints, 4u);
  EXPECT_EQ(compare_dir(dir("out"), b.final_model, true), "");
  EXPECT_EQ(bypassed, r.pages * xc::kPageSize);
  // Cut inside the pages of the last checkpoint: a failover to checkpoint 3,
  // the same as from memory.
  const std::uint64_t cut = b.commit_ends[2] + (b.commit_ends[3] - b.commit_ends[2]) / 2;
  const RestoreReport mem = restore_bytes(Bytes(b.bytes).first(cut), dir("mem-cut"));
  const RestoreReport pipe = restore_pipe(Bytes(b.bytes).first(cut), dir("pipe-cut"));
  ASSERT_EQ(mem.status, RestoreStatus::kFailover) << describe(mem);
  ASSERT_EQ(pipe.status, RestoreStatus::kFailover) << describe(pipe);
  EXPECT_EQ(pipe.checkpoints, 3u);
  EXPECT_EQ(compare_dir(dir("pipe-cut"), b.models[2], true), "");
  ASSERT_TRUE(pipe.error && mem.error);
  EXPECT_EQ(pipe.error->offset, mem.error->offset);
}

TEST_F(PipeRestoreTest, CutInsideThePagesStopsAtTheExactOffset) {
  const BuiltStream b = build_stream(big_hvm());
  // Cuts inside the first batch's pages, at page and odd boundaries.
  for (std::uint64_t cut : {std::uint64_t{0x3000}, std::uint64_t{0x123457}, std::uint64_t{0x400000}}) {
    ASSERT_LT(cut, b.bytes.size());
    const RestoreReport mem = restore_bytes(Bytes(b.bytes).first(cut), dir("m" + std::to_string(cut)));
    const RestoreReport pipe = restore_pipe(Bytes(b.bytes).first(cut), dir("p" + std::to_string(cut)), {}, {}, 5000);
    EXPECT_EQ(pipe.status, mem.status);
    EXPECT_EQ(pipe.status, RestoreStatus::kInvalid);
    ASSERT_TRUE(pipe.error && mem.error);
    EXPECT_EQ(pipe.error->code, ErrorCode::kTruncated);
    EXPECT_EQ(pipe.error->offset, cut) << pipe.error->describe();
    if (cut > 0x3000) {  // inside the pages: the message names the record
      EXPECT_EQ(pipe.error->message.rfind("record #", 0), 0u) << pipe.error->message;
    }
    EXPECT_EQ(mem.error->offset, cut) << mem.error->describe();
    // The same error, rule included, as the cursor gives from memory.
    EXPECT_EQ(pipe.error->describe(), mem.error->describe());
    EXPECT_EQ(pipe.rule.has_value(), mem.rule.has_value());
  }
}

// 400 PV pages in batches of 128, page tables among them (empty, so that
// no entry refers beyond the p2m); `tables` and `data` count them.
StreamSpec small_pv(std::uint64_t& tables, std::uint64_t& data) {
  StreamSpec s;
  s.hvm = false;
  PartSpec p;
  for (std::uint64_t pfn = 0; pfn < 400; ++pfn) {
    unsigned type = 0;
    if (pfn % 50 == 7) type = 1 + static_cast<unsigned>(pfn % 4);  // L1..L4
    if (pfn % 50 == 8) type = 0x9 + static_cast<unsigned>(pfn % 4);  // pinned
    if (type != 0) ++tables;
    ++data;
    // Tables are empty (seed 0): no entry refers beyond the p2m.
    p.pages.push_back({pfn, type != 0 ? 0u : static_cast<std::uint32_t>(pfn + 3), type});
  }
  p.batch = 128;
  // start_info pfn 0 (NOTAB), cr3 pfn 7 (an L4 table), no GDT frames.
  p.vcpu_basic[0] = std::vector<std::byte>(xc::kVcpuBasicSize64, std::byte{0});
  p.vcpu_basic[0][5008 + 1] = std::byte{0x70};  // ctrlreg[3] = 7 << 12
  p.shared_info = std::vector<std::byte>(4096, std::byte{9});
  s.parts.push_back(p);
  return s;
}

TEST_F(PipeRestoreTest, PvPagesStillPassThroughTheRules) {
  // Every data page of a PV guest is read into user space for the rules:
  // the page tables (L1-L4, pinned or not) for LIBXC-PAGE-11, and any NOTAB
  // page may be the start_info page LIBXC-VCPU-17 reads. None bypasses it.
  std::uint64_t tables = 0, data = 0;
  const StreamSpec s = small_pv(tables, data);
  const BuiltStream b = build_stream(s);
  const RestoreReport mem = restore_bytes(Bytes(b.bytes), dir("mem"));
  ASSERT_EQ(mem.status, RestoreStatus::kComplete) << describe(mem);
  std::uint64_t bypassed = 0;
  const RestoreReport r = restore_pipe(Bytes(b.bytes), dir("out"), {}, {}, 0, &bypassed);
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << describe(r);
  EXPECT_EQ(r.pages, data);
  EXPECT_EQ(compare_dir(dir("out"), b.final_model, false), "");
  EXPECT_EQ(read_file(dir("out") + "/memory.raw"), read_file(dir("mem") + "/memory.raw"));
  EXPECT_GT(tables, 0u);
  EXPECT_EQ(bypassed, 0u);
  EXPECT_EQ(r.warnings, mem.warnings);
}

TEST_F(PipeRestoreTest, ACutInsidePagesTheRulesReadIsTheRecordCutShort) {
  // PV pages are pulled for the rules; a pull the input ends inside used to
  // stop at the first octet asked for, without STREAM-04. Now the error is
  // the cursor's, as from memory: where the input ends, the rule included.
  std::uint64_t tables = 0, data = 0;
  const BuiltStream b = build_stream(small_pv(tables, data));
  for (std::uint64_t cut : {std::uint64_t{0x2345}, std::uint64_t{0x60001}}) {
    ASSERT_LT(cut, b.bytes.size());
    const RestoreReport mem = restore_bytes(Bytes(b.bytes).first(cut), dir("m" + std::to_string(cut)));
    const RestoreReport pipe = restore_pipe(Bytes(b.bytes).first(cut), dir("p" + std::to_string(cut)), {}, {}, 4097);
    ASSERT_TRUE(pipe.error && mem.error);
    EXPECT_EQ(pipe.status, RestoreStatus::kInvalid);
    EXPECT_EQ(pipe.status, mem.status);
    EXPECT_EQ(pipe.error->offset, cut) << pipe.error->describe();
    EXPECT_EQ(pipe.error->describe(), mem.error->describe());
    ASSERT_TRUE(pipe.rule && mem.rule);
    EXPECT_EQ(pipe.rule->rule, "STREAM-04");
    EXPECT_EQ(pipe.rule->rule, mem.rule->rule);
  }
}

}  // namespace
}  // namespace xenstream::restore
