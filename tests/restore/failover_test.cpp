// Failover is for a broken channel, not for a bad stream (issue: one rule
// engine). For every record type that can appear in a checkpoint, in a
// Remus or COLO stream of three checkpoints:
//   - the stream cut inside that record of checkpoint 2: exit 3, DIR holds
//     checkpoint 1, manifest status "failover";
//   - that record of checkpoint 2 malformed: exit 1, DIR still holds
//     checkpoint 1, manifest status "rejected" naming the rule, its offset
//     and the checkpoint kept.
// The streams are the rule corpus's (tests/verify/corpus.cpp), built from
// libstream's writer, and restored through streamrestore's library.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/restore/stream_builder.h"
#include "tests/verify/corpus.h"

namespace xenstream::restore {
namespace {

namespace vt = verify::testing;
using vt::Buf;

constexpr std::uint32_t kPage = 0x01, kTsc = 0x08, kHvmCtx = 0x09, kParams = 0x0A, kCkpt = 0x0E;
constexpr std::uint32_t kXs = 2, kEmu = 3, kCkEnd = 4, kCkState = 5;

nlohmann::json manifest(const std::string& dir) {
  const auto text = testing::read_file(dir + "/manifest.json");
  if (!text) return nlohmann::json();
  return nlohmann::json::parse(std::string(reinterpret_cast<const char*>(text->data()), text->size()));
}

struct Target {
  std::string name;
  Layer layer;
  std::uint32_t type;
  bool colo = false;
  // Makes the record malformed; the rule it then breaks; strict: the rule
  // is one Xen reads past, so only --strict refuses it.
  std::function<void(Buf&)> break_body;
  std::string rule;
  bool strict = false;
};

// Checkpoint 2's record of that type (COLO's CHECKPOINT_STATE that
// announces checkpoint 2 follows checkpoint 1's CHECKPOINT_END).
int nth(const Target& t) { return t.layer == Layer::kLibxl && t.type == kCkState ? 0 : 1; }

vt::Stream stream_for(const Target& t) {
  vt::Stream s = t.colo ? vt::colo_stream(3) : vt::remus_stream(3);
  if (t.type == kXs && t.layer == Layer::kLibxl) {
    for (int c = 2; c >= 0; --c) {
      s.insert_before(Layer::kLibxl, kEmu, vt::xl(kXs, vt::emulator(2, 0, vt::xenstore({{"a", "b"}}))), c);
    }
  }
  s.at(t.layer, t.type, nth(t)).tag = "target";
  return s;
}

RestoreReport restore(const Buf& bytes, const std::string& dir, bool strict) {
  RestoreOptions o;
  o.rules.strict = strict;
  return testing::restore_bytes(Bytes(bytes.data(), bytes.size()), dir, o);
}

std::vector<Target> targets() {
  auto u32 = [](std::uint32_t v) {
    Buf b;
    vt::put32(b, v);
    return b;
  };
  return {
      {"PAGE_DATA", Layer::kLibxc, kPage, false, [](Buf& b) { vt::set32(b, 0, 0); }, "LIBXC-PAGE-01"},
      {"X86_TSC_INFO", Layer::kLibxc, kTsc, false, [](Buf& b) { b.resize(16); }, "LIBXC-TSC-01"},
      {"HVM_CONTEXT", Layer::kLibxc, kHvmCtx, false, [](Buf& b) { b.clear(); }, "LIBXC-HVMCTX-01"},
      {"HVM_PARAMS", Layer::kLibxc, kParams, false, [](Buf& b) { vt::set64(b, 8, 200); }, "LIBXC-PARAMS-04"},
      {"CHECKPOINT", Layer::kLibxc, kCkpt, false, [](Buf& b) { b.resize(8); }, "LIBXC-REC-09", true},
      {"EMULATOR_XENSTORE_DATA", Layer::kLibxl, kXs, false,
       [](Buf& b) {
         b.resize(8);
         const Buf d = vt::xenstore({{"", "x"}});
         b.insert(b.end(), d.begin(), d.end());
       },
       "LIBXL-XS-02"},
      {"EMULATOR_CONTEXT", Layer::kLibxl, kEmu, false, [](Buf& b) { b.resize(4); }, "LIBXL-EMU-01"},
      {"CHECKPOINT_END", Layer::kLibxl, kCkEnd, false, [](Buf& b) { b.resize(8); }, "LIBXL-REC-05", true},
      {"CHECKPOINT_STATE", Layer::kLibxl, kCkState, true, [u32](Buf& b) { b = u32(2); }, "LIBXL-CKPT-04"},
  };
}

class FailoverTest : public ::testing::TestWithParam<std::size_t> {
 protected:
  void SetUp() override { dir_ = testing::fast_temp_dir("failover"); }
  void TearDown() override { testing::remove_tree(dir_); }
  std::string dir_;
};

TEST_P(FailoverTest, CutInsideCheckpointTwoFailsOverToOne) {
  const Target t = targets()[GetParam()];
  const vt::Stream s = stream_for(t);
  std::map<std::string, std::uint64_t> off;
  const Buf bytes = s.bytes(&off);
  // Cut inside the record (its header is 8 octets; half of it is there).
  const Buf cut(bytes.begin(), bytes.begin() + static_cast<long>(off.at("target") + 4));
  const RestoreReport r = restore(cut, dir_, false);
  EXPECT_EQ(exit_status(r.status), 3) << (r.error ? r.error->describe() : "");
  EXPECT_EQ(r.checkpoints, 1u);
  EXPECT_FALSE(r.rule);
  const nlohmann::json m = manifest(dir_);
  EXPECT_EQ(m["status"], "failover");
  EXPECT_EQ(m["checkpoints"]["committed"], 1);
  EXPECT_EQ(m["end"]["reason"]["code"], "truncated");
}

TEST_P(FailoverTest, MalformedInCheckpointTwoIsFatalWithOneKept) {
  const Target t = targets()[GetParam()];
  vt::Stream s = stream_for(t);
  t.break_body(s.at(t.layer, t.type, nth(t)).body);
  std::map<std::string, std::uint64_t> off;
  const Buf bytes = s.bytes(&off);
  if (t.strict) {
    // Xen reads past this one: without --strict the restore completes or
    // fails over as the stream says, and says nothing is wrong.
    const RestoreReport lax = restore(bytes, dir_, false);
    EXPECT_NE(exit_status(lax.status), 1) << (lax.error ? lax.error->describe() : "");
    testing::remove_tree(dir_);
    dir_ = testing::fast_temp_dir("failover");
  }
  const RestoreReport r = restore(bytes, dir_, t.strict);
  EXPECT_EQ(exit_status(r.status), 1) << (r.error ? r.error->describe() : "");
  ASSERT_TRUE(r.rule) << (r.error ? r.error->describe() : "");
  EXPECT_EQ(r.rule->rule, t.rule);
  EXPECT_GE(r.rule->offset, off.at("target"));
  EXPECT_EQ(r.checkpoints, 1u);
  const nlohmann::json m = manifest(dir_);
  ASSERT_TRUE(m.is_object()) << "DIR lost its last complete checkpoint";
  EXPECT_EQ(m["status"], "rejected");
  EXPECT_EQ(m["checkpoints"]["committed"], 1);
  EXPECT_EQ(m["end"]["outcome"], "rejected");
  EXPECT_EQ(m["end"]["rule"]["id"], t.rule);
  EXPECT_EQ(m["end"]["rule"]["offset"], r.rule->offset);
  EXPECT_EQ(m["end"]["checkpoint"], 1);
}

std::string name_of(const ::testing::TestParamInfo<std::size_t>& info) { return targets()[info.param].name; }

INSTANTIATE_TEST_SUITE_P(EveryCheckpointRecord, FailoverTest, ::testing::Range<std::size_t>(0, targets().size()),
                         name_of);

}  // namespace
}  // namespace xenstream::restore
