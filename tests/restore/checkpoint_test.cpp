// Checkpointed (Remus/COLO) restores, in the spirit of QEMU's
// block-replication tests: write a pattern, checkpoint, overwrite part of
// it, fail over, and read back exactly the committed state, at every
// truncation offset of a small generated stream.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/record_writer.h>
#include "tests/restore/stream_builder.h"

namespace xenstream::restore {
namespace {

using namespace testing;
using nlohmann::json;

json manifest_of(const std::string& dir) {
  auto m = read_file(dir + "/manifest.json");
  if (!m) return json();
  return json::parse(m->begin(), m->end(), nullptr, false);
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = fast_temp_dir("ckpt"); }
  void TearDown() override { remove_tree(root_); }
  std::string dir(const std::string& name = "out") { return root_ + "/" + name; }
  std::string root_;
};

// Small on purpose: every one of its offsets is a separate restore.
StreamSpec tiny_checkpointed(bool libxl) {
  StreamSpec s;
  s.checkpointed = true;
  s.libxl = libxl;
  PartSpec p0;
  p0.pages = {{0, 1}, {2, 1}};
  p0.hvm_context = hvm_context_blob(1, 0x10);
  p0.hvm_params = {{1, 100}};
  if (libxl) {
    p0.xenstore = {{"physmap/1/size", "10"}};
    p0.emulator_context = qemu_state_blob(0xA0, 12);
  }
  PartSpec p1;  // overwrite pfn 0, change a param, keep the rest
  p1.pages = {{0, 2}};
  p1.hvm_context = hvm_context_blob(1, 0x11);
  p1.hvm_params = {{1, 101}};
  PartSpec p2;  // populate pfn 3 (XALLOC, no data), re-type pfn 2 as XTAB (its data stays)
  p2.pages = {{3, 0, 0xE}, {2, 0, 0xF}};
  p2.hvm_context = hvm_context_blob(1, 0x12);
  if (libxl) {
    p2.emulator_context = qemu_state_blob(0xA2, 20);
    p2.xenstore = {{"physmap/1/size", "20"}};
  }
  s.parts = {p0, p1, p2};
  return s;
}

// Restores every prefix of `b` whose length is `shard` modulo kShards and
// checks the outcome against the models. The shards are separate test cases
// so that a parallel ctest spreads them.
constexpr std::size_t kShards = 4;

// Restores the first `len` octets of `b` into `dir`, checks the outcome
// against the models, and removes `dir`.
void check_truncation(const BuiltStream& b, const std::string& dir, std::size_t len) {
  const Bytes all(b.bytes);
  {
    const RestoreReport r = restore_bytes(all.first(len), dir);
    std::size_t committed = 0;
    while (committed < b.commit_ends.size() && b.commit_ends[committed] <= len) ++committed;
    SCOPED_TRACE("prefix of " + std::to_string(len) + " octets, " + std::to_string(committed) +
                 " checkpoints complete");
    if (len == all.size()) {
      ASSERT_EQ(r.status, RestoreStatus::kComplete) << (r.error ? r.error->describe() : "");
      ASSERT_EQ(compare_dir(dir, b.final_model, true), "");
      ASSERT_EQ(manifest_of(dir)["status"], "complete");
    } else if (committed > 0) {
      ASSERT_EQ(r.status, RestoreStatus::kFailover) << (r.error ? r.error->describe() : "");
      ASSERT_EQ(exit_status(r.status), 3);
      ASSERT_EQ(r.checkpoints, committed);
      ASSERT_TRUE(r.error);
      ASSERT_EQ(r.error->code, ErrorCode::kTruncated) << r.error->describe();
      ASSERT_EQ(compare_dir(dir, b.models[committed - 1], true), "");
      const json m = manifest_of(dir);
      ASSERT_EQ(m["status"], "failover");
      ASSERT_EQ(m["end"]["reason"]["code"], "truncated");
    } else {
      ASSERT_EQ(r.status, RestoreStatus::kInvalid) << (r.error ? r.error->describe() : "");
      ASSERT_EQ(exit_status(r.status), 1);
      ASSERT_TRUE(r.error);
      ASSERT_EQ(r.error->code, ErrorCode::kTruncated) << r.error->describe();
      // Nothing was committed: the directory the restore made is gone.
      ASSERT_FALSE(read_file(dir + "/manifest.json"));
      ASSERT_TRUE(list_dir(dir).empty());
    }
    remove_tree(dir);
  }
}

void check_every_truncation(const BuiltStream& b, const std::string& dir, std::size_t shard) {
  for (std::size_t len = shard; len <= b.bytes.size(); len += kShards) check_truncation(b, dir, len);
}

class TruncationTest : public ::testing::TestWithParam<std::size_t> {
 protected:
  void SetUp() override { root_ = fast_temp_dir("trunc"); }
  void TearDown() override { remove_tree(root_); }
  std::string root_;
};

TEST_P(TruncationTest, EveryOffsetOfALibxlStream) {
  const BuiltStream b = build_stream(tiny_checkpointed(true));
  ASSERT_EQ(b.commit_ends.size(), 3u);
  ASSERT_EQ(b.models.size(), 3u);
  check_every_truncation(b, root_ + "/out", GetParam());
}

TEST_P(TruncationTest, EveryOffsetOfABareLibxcStream) {
  const BuiltStream b = build_stream(tiny_checkpointed(false));
  ASSERT_EQ(b.commit_ends.size(), 3u);
  check_every_truncation(b, root_ + "/out", GetParam());
}

INSTANTIATE_TEST_SUITE_P(Shard, TruncationTest, ::testing::Range<std::size_t>(0, kShards));

// PAGE_DATA records longer than a Xen batch: streamrestore reads a record's
// head, extends it to all its entries, then pulls and applies its pages a
// slice at a time. A stream cut anywhere inside such a record (its entries,
// any slice, the padding) still fails over to the last whole checkpoint.
TEST_F(CheckpointTest, BigBatchesCutAnywhere) {
  StreamSpec s;
  s.checkpointed = true;
  PartSpec p0;
  for (std::uint64_t pfn = 0; pfn < 1500; ++pfn) {
    // Every 7th entry carries no data (XTAB), so slices and entries differ.
    p0.pages.push_back(pfn % 7 == 3 ? PageSpec{pfn, 0, 0xF} : PageSpec{pfn, 1});
  }
  p0.batch = 1500;
  p0.hvm_context = hvm_context_blob(1, 0x10);
  PartSpec p1;
  for (std::uint64_t pfn = 100; pfn < 1300; ++pfn) p1.pages.push_back({pfn, 2});
  p1.batch = 1200;
  p1.hvm_context = hvm_context_blob(1, 0x11);
  PartSpec p2;
  p2.pages = {{5, 3}, {6, 0}};
  p2.hvm_context = hvm_context_blob(1, 0x12);
  s.parts = {p0, p1, p2};
  const BuiltStream b = build_stream(s);
  ASSERT_EQ(b.commit_ends.size(), 3u);
  // A stride that is no multiple of 8 or of a page lands everywhere.
  for (std::size_t len = 1; len < b.bytes.size(); len += 196613) check_truncation(b, dir(), len);
  for (std::size_t k = 0; k < 3; ++k) {
    for (std::size_t d : {1u, 8u, 4096u, 8200u}) check_truncation(b, dir(), b.commit_ends[k] - d);
  }
  check_truncation(b, dir(), b.bytes.size());
}

TEST_F(CheckpointTest, PatternCheckpointOverwriteFailover) {
  // Pattern A on pfns 0-7, checkpoint; then pattern B over pfns 2-5 arrives
  // but the primary dies before CHECKPOINT_END: memory must read A.
  StreamSpec s;
  s.checkpointed = true;
  PartSpec a;
  for (std::uint64_t pfn = 0; pfn < 8; ++pfn) a.pages.push_back({pfn, 0xA});
  a.hvm_context = hvm_context_blob(1, 0xA);
  PartSpec bpart;
  for (std::uint64_t pfn = 2; pfn < 6; ++pfn) bpart.pages.push_back({pfn, 0xB});
  bpart.pages.push_back({20, 0xB});
  bpart.hvm_context = hvm_context_blob(1, 0xB);
  s.parts = {a, bpart};
  s.end = false;
  const BuiltStream b = build_stream(s);
  // Cut just before the second CHECKPOINT_END: all of B is staged.
  const std::size_t cut = b.commit_ends[1] - 8;
  const RestoreReport r = restore_bytes(Bytes(b.bytes).first(cut), dir());
  ASSERT_EQ(r.status, RestoreStatus::kFailover);
  EXPECT_EQ(r.checkpoints, 1u);
  EXPECT_EQ(r.error->message, "the stream ends at " + hex(cut) + " without an END record");
  EXPECT_EQ(compare_dir(dir(), b.models[0], true), "");
  // The whole stream (no END, as a real Remus primary never sends one)
  // fails over to its last checkpoint, which then holds B.
  remove_tree(dir());
  const RestoreReport full = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(full.status, RestoreStatus::kFailover);
  EXPECT_EQ(full.checkpoints, 2u);
  EXPECT_EQ(compare_dir(dir(), b.models[1], true), "");
}

TEST_F(CheckpointTest, SamePfnTwiceInACheckpointLastDataWins) {
  StreamSpec s;
  s.checkpointed = true;
  PartSpec a;
  a.pages = {{1, 1}, {2, 1}};
  a.hvm_context = hvm_context_blob(1, 1);
  PartSpec b2;
  // pfn 1: data, data, then XTAB (type changes, data of the second stays);
  // pfn 2: a zero page over data.
  b2.pages = {{1, 5}, {2, 0}, {1, 6}, {1, 0, 0xF}};
  b2.batch = 1;
  b2.hvm_context = hvm_context_blob(1, 2);
  s.parts = {a, b2};
  const BuiltStream b = build_stream(s);
  ASSERT_EQ(restore_bytes(Bytes(b.bytes), dir()).status, RestoreStatus::kComplete);
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
  EXPECT_EQ(manifest_of(dir())["memory"]["typed_ranges"], json::parse(R"([[1,2,"xtab"]])"));
}

TEST_F(CheckpointTest, RecordsAfterTheLastCheckpointAreDroppedAtEnd) {
  StreamSpec s = tiny_checkpointed(true);
  // A page after the last CHECKPOINT_END, then END: Xen drops it.
  s.end = true;
  BuiltStream b = build_stream(s);
  // Rebuild with an extra uncommitted page by hand: strip the two END
  // records, add PAGE_DATA, then put them back.
  std::vector<std::byte> bytes(b.bytes.begin(), b.bytes.end() - 16);
  BufferSink extra;
  RecordWriter w(extra);
  const auto page = page_bytes(9, 9);
  const std::uint64_t entry[] = {9};
  const Bytes pages[] = {Bytes(page)};
  ASSERT_TRUE(w.append_page_data(entry, pages));
  ASSERT_TRUE(w.append(format::libxc::RecordType::kEnd));
  ASSERT_TRUE(w.append(format::libxl::RecordType::kEnd));
  bytes.insert(bytes.end(), extra.data().begin(), extra.data().end());
  const RestoreReport r = restore_bytes(Bytes(bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete);
  EXPECT_EQ(r.checkpoints, 3u);
  ASSERT_EQ(r.warnings.size(), 1u);
  // The rules' warning, as streamverify prints it (without "warning: ").
  EXPECT_NE(r.warnings[0].find(" END: END in a checkpointed stream (Xen's saver never writes one): Xen "
                               "restores checkpoint 3 and drops the 1 records received since [LIBXC-CKPT-04]"),
            std::string::npos)
      << r.warnings[0];
  EXPECT_EQ(r.warnings[0].rfind("offset 0x", 0), 0u) << r.warnings[0];
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
  EXPECT_EQ(manifest_of(dir())["end"]["warnings"][0], r.warnings[0]);
}

TEST_F(CheckpointTest, ColoCheckpointStateIsAccepted) {
  StreamSpec s = tiny_checkpointed(true);
  s.colo = true;
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << r.error->describe();
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
  EXPECT_EQ(manifest_of(dir())["checkpoints"]["colo"], true);
}

TEST_F(CheckpointTest, CheckpointEndOutsideACheckpointIsRefused) {
  BufferSink sink;
  RecordWriter w(sink);
  ASSERT_TRUE(w.write_libxl_header());
  ASSERT_TRUE(w.append(format::libxl::RecordType::kCheckpointEnd));
  const RestoreReport r = restore_bytes(Bytes(sink.data()), dir());
  EXPECT_EQ(r.status, RestoreStatus::kInvalid);
  // The rule engine's problem: its rule id, located at the record header.
  EXPECT_EQ(r.error->message,
            "record #0 CHECKPOINT_END: CHECKPOINT_END without a libxc CHECKPOINT before it (Xen: "
            "\"Unexpected CHECKPOINT_END record in stream\") [LIBXL-CKPT-01]");
  EXPECT_EQ(r.error->offset, 0x10u);
  ASSERT_TRUE(r.rule);
  EXPECT_EQ(r.rule->rule, "LIBXL-CKPT-01");
}

TEST_F(CheckpointTest, HookRunsAfterEveryCommitWithItsNumber) {
  const BuiltStream b = build_stream(tiny_checkpointed(true));
  const std::string log = root_ + "/hook.log";
  RestoreOptions o;
  o.on_checkpoint = "echo \"$XENSTREAM_CHECKPOINT $XENSTREAM_DIR $(cat \"$XENSTREAM_DIR/manifest.json\" | grep -c committed)\" >> " + log;
  o.hook_env = {{"XENSTREAM_DIR", dir()}};
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir(), o);
  ASSERT_EQ(r.status, RestoreStatus::kComplete);
  auto text = read_file(log);
  ASSERT_TRUE(text);
  const std::string got(reinterpret_cast<const char*>(text->data()), text->size());
  EXPECT_EQ(got, "1 " + dir() + " 1\n2 " + dir() + " 1\n3 " + dir() + " 1\n");
}

TEST_F(CheckpointTest, FailingHookStopsWithThatCheckpointKept) {
  const BuiltStream b = build_stream(tiny_checkpointed(true));
  RestoreOptions o;
  o.on_checkpoint = "test \"$XENSTREAM_CHECKPOINT\" -lt 2";
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir(), o);
  ASSERT_EQ(r.status, RestoreStatus::kFailover);
  EXPECT_EQ(exit_status(r.status), 3);
  EXPECT_EQ(r.checkpoints, 2u);
  EXPECT_EQ(r.error->message, "the --on-checkpoint command exited with status 1 after checkpoint 2; stopping there");
  EXPECT_EQ(compare_dir(dir(), b.models[1], true), "");
  EXPECT_EQ(manifest_of(dir())["end"]["reason"]["message"], r.error->message);
}

TEST_F(CheckpointTest, StagingCapIsEnforced) {
  const BuiltStream b = build_stream(small_checkpointed_hvm(3));
  DirectoryOptions d;
  d.max_staged_pages = 1;  // checkpoint 2 stages two pages
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir(), {}, d);
  ASSERT_EQ(r.status, RestoreStatus::kFailover);
  EXPECT_EQ(r.checkpoints, 1u);
  EXPECT_EQ(r.error->code, ErrorCode::kLimit);
  EXPECT_EQ(r.error->message, "checkpoint 2 stages more than 1 page entries");
  EXPECT_EQ(compare_dir(dir(), b.models[0], true), "");
}

}  // namespace
}  // namespace xenstream::restore
