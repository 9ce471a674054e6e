// One judge: every stream of streamverify's rule corpus (tests/verify/
// corpus.cpp) goes through both tools' libraries, and they must agree on
// the verdict and, for a refused stream, on the rule that refuses it.
//
// streamverify: verify() over the bytes. streamrestore: read_container()
// (container_refused() when it fails) and restore_stream() into a fresh
// directory, as tools/restore/main.cpp does. A stream streamverify accepts
// must restore (exit 0, or 3 for a checkpointed stream that stops inside a
// checkpoint); a stream it refuses must make streamrestore exit 1 naming
// the same first error rule, with nothing left that looks finished.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include <xenstream/libstream/source.h>
#include "tests/restore/stream_builder.h"
#include "tests/verify/corpus.h"
#include "tools/verify/verifier.h"

namespace xenstream::restore {
namespace {

using verify::testing::Case;
using verify::testing::corpus;

struct Verdict {
  int exit = 0;      // the tool's exit status
  std::string rule;  // the first error rule, "" when none
  std::string text;  // for failure messages
};

Verdict by_verify(const Case& c, bool strict) {
  MemorySource src(Bytes(c.bytes.data(), c.bytes.size()), c.name);
  verify::VerifyOptions o;
  o.format = c.hint;
  o.mode = *verify::parse_mode(c.mode);
  o.strict = strict;
  const verify::VerifyResult r = verify::verify(src, o);
  Verdict v;
  v.exit = r.exit_status();
  for (const auto& p : r.problems) {
    v.text += p.format() + "\n";
    if (v.rule.empty() && p.severity == verify::Severity::kError) v.rule = std::string(p.rule);
  }
  return v;
}

Verdict by_restore(const Case& c, const std::string& dir, bool strict) {
  RestoreOptions ro;
  ro.rules.format = c.hint;
  ro.rules.mode = *verify::parse_mode(c.mode);
  ro.rules.strict = strict;
  MemorySource src(Bytes(c.bytes.data(), c.bytes.size()), c.name);
  Verdict v;
  auto container = read_container(src, c.hint);
  if (!container) {
    auto p = container_refused(src, container.error(), ro.rules);
    v.exit = p ? 1 : 2;
    v.rule = p ? std::string(p->rule) : "";
    v.text = p ? p->format() : container.error().describe();
    return v;
  }
  DirectoryOptions d;
  d.dir = dir;
  auto backend = DirectoryBackend::create(d);
  if (!backend) {
    v.exit = 2;
    v.text = backend.error().describe();
    return v;
  }
  const RestoreReport r = restore_stream(src, *container, **backend, ro);
  v.exit = exit_status(r.status);
  if (r.rule) v.rule = std::string(r.rule->rule);
  v.text = std::string(status_name(r.status)) + (r.error ? ": " + r.error->describe() : "");
  return v;
}

class Agreement : public ::testing::TestWithParam<std::size_t> {};

void agree(const Case& c, bool strict) {
  const std::string dir = testing::fast_temp_dir("agree");
  const Verdict v = by_verify(c, strict);
  const Verdict r = by_restore(c, dir, strict);
  const std::string both = c.name + (strict ? " (--strict)" : "") + "\nstreamverify:\n" + v.text +
                           "streamrestore: " + r.text;
  if (v.exit == 0) {
    EXPECT_TRUE(r.exit == 0 || r.exit == 3) << both;
    EXPECT_EQ(r.rule, "") << both;
  } else {
    EXPECT_EQ(v.exit, 1) << both;
    EXPECT_EQ(r.exit, 1) << both;
    EXPECT_EQ(r.rule, v.rule) << both;
    // Refused before any commit: nothing that looks finished. After one,
    // DIR keeps the last checkpoint and its manifest names the rule.
    if (std::filesystem::exists(dir + "/manifest.json")) {
      const auto text = testing::read_file(dir + "/manifest.json");
      ASSERT_TRUE(text) << both;
      const nlohmann::json m = nlohmann::json::parse(
          std::string(reinterpret_cast<const char*>(text->data()), text->size()));
      EXPECT_EQ(m["status"], "rejected") << both;
      EXPECT_EQ(m["end"]["outcome"], "rejected") << both;
      EXPECT_EQ(m["end"]["rule"]["id"], v.rule) << both;
    }
  }
  testing::remove_tree(dir);
}

TEST_P(Agreement, SameVerdictAndRule) { agree(corpus()[GetParam()], false); }
TEST_P(Agreement, SameVerdictAndRuleStrict) { agree(corpus()[GetParam()], true); }

std::string case_name(const ::testing::TestParamInfo<std::size_t>& info) {
  std::string n = corpus()[info.param].name;
  for (char& ch : n) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return n;
}

INSTANTIATE_TEST_SUITE_P(Corpus, Agreement, ::testing::Range<std::size_t>(0, corpus().size()), case_name);

}  // namespace
}  // namespace xenstream::restore
