// streamsave: round trips through streamrestore, streamverify and Xen's
// verify-stream-v2 (fetched by the save_oracle fixture).
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tools/gen/synth.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
namespace gen = xenstream::gen;

namespace {

int run(const std::string& cmd) {
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xs-save-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& n) const { return (path / n).string(); }
};

const std::string kSave = XS_STREAMSAVE;
const std::string kRestore = XS_STREAMRESTORE;
const std::string kVerify = XS_STREAMVERIFY;
const std::string kOracle = std::string(XS_ORACLE_DIR) + "/verify-stream-v2";

json comparable_manifest(const fs::path& dir) {
  json m = json::parse(slurp(dir / "manifest.json"));
  m.erase("stream");               // offsets depend on record order
  // The rules' warnings name stream offsets too (the same warnings, placed
  // where each stream has them).
  if (m.contains("end")) m["end"].erase("warnings");
  m["source"].erase("compressed");  // zstd on the wire is not domain state
  return m;
}

// Every file equal byte for byte, manifests equal but for stream offsets.
void expect_same_domain(const fs::path& a, const fs::path& b) {
  std::vector<std::string> fa, fb;
  for (const auto& e : fs::directory_iterator(a)) fa.push_back(e.path().filename());
  for (const auto& e : fs::directory_iterator(b)) fb.push_back(e.path().filename());
  std::sort(fa.begin(), fa.end());
  std::sort(fb.begin(), fb.end());
  RC_ASSERT(fa == fb);
  for (const auto& f : fa) {
    if (f == "manifest.json") continue;
    RC_ASSERT(slurp(a / f) == slurp(b / f));
  }
  RC_ASSERT(comparable_manifest(a) == comparable_manifest(b));
}

std::string oracle_format(const json& summary) {
  const std::string layout = summary.at("layout");
  if (layout == "xl") return "xl";
  return layout;  // libxl or libxc
}

json save_json(const std::string& args, const std::string& err) {
  const int rc = run(kSave + " " + args + " --json 2>" + err);
  EXPECT_EQ(rc, 0) << slurp(err);
  return json::parse(slurp(err));
}

gen::SynthOptions arbitrary_options() {
  gen::SynthOptions o;
  o.guest = *rc::gen::element(gen::GuestType::kHvm, gen::GuestType::kPv);
  o.pages = *rc::gen::inRange<std::uint64_t>(3, 300);
  o.batch = *rc::gen::element<std::uint32_t>(1, 7, 1024);
  o.layer = *rc::gen::element(gen::OuterLayer::kLibxl, gen::OuterLayer::kLibxc);
  o.container = *rc::gen::element(gen::ContainerKind::kNone, gen::ContainerKind::kXl,
                                  gen::ContainerKind::kLibvirt);
  // A save-file header always carries a libxl stream (xl reads a bare libxc
  // image behind it as a legacy one), and so does what streamsave writes.
  if (o.container != gen::ContainerKind::kNone) o.layer = gen::OuterLayer::kLibxl;
  o.version = *rc::gen::element<std::uint32_t>(2, 3);
  o.vcpus = *rc::gen::inRange<std::uint32_t>(1, 4);
  o.seed = *rc::gen::arbitrary<std::uint32_t>();
  const bool hvm_libxl = o.guest == gen::GuestType::kHvm && o.layer == gen::OuterLayer::kLibxl;
  o.emulator_context = hvm_libxl && *rc::gen::arbitrary<bool>();
  o.xenstore_data = hvm_libxl && *rc::gen::arbitrary<bool>();
  return o;
}

}  // namespace

// restore(save(DIR)) == DIR; the saved stream passes streamverify (and
// Xen's verify-stream-v2 unless it carries xenstore data: oracle bug 1);
// saving the restored copy again writes the same bytes.
RC_GTEST_PROP(Save, RoundTripThroughRestore, ()) {
  const auto o = arbitrary_options();
  const bool zstd = *rc::gen::arbitrary<bool>();
  TempDir t;
  RC_ASSERT(gen::write_stream_to_path(t / "in.xen", o).has_value());
  RC_ASSERT(run(kRestore + " -q " + t / "in.xen" + " --out " + t / "d1") == 0);
  const std::string out1 = t / (zstd ? "s1.xen.zst" : "s1.xen");
  const json sum = save_json(t / "d1" + " -o " + out1 + (zstd ? " --zstd" : ""), t / "err");
  RC_ASSERT(sum.at("pages").get<std::uint64_t>() == o.pages);
  RC_ASSERT(run(kVerify + " -q " + out1) == 0);
  if (!zstd && sum.at("layout") != "libvirt") {
    const int orc = run(kOracle + " -q -f " + oracle_format(sum) + " -i " + out1);
    RC_ASSERT(orc == (o.xenstore_data ? 1 : 0));
  }
  RC_ASSERT(run(kRestore + " -q " + out1 + " --out " + t / "d2") == 0);
  expect_same_domain(t.path / "d1", t.path / "d2");
  RC_ASSERT(run(kSave + " " + t / "d2" + " -o " + t / "s2.xen" + (zstd ? " --zstd" : "")) == 0);
  RC_ASSERT(slurp(t / "s2.xen") == slurp(out1));
}

// The generator writes what Xen writes, so packing its restore gives back
// the generator's bytes (PV: no libxl records whose order is free).
TEST(Save, PvStreamIsByteIdenticalToTheGenerators) {
  TempDir t;
  gen::SynthOptions o;
  o.guest = gen::GuestType::kPv;
  o.pages = 700;
  o.vcpus = 2;
  ASSERT_TRUE(gen::write_stream_to_path(t / "in.xen", o).has_value());
  ASSERT_EQ(run(kRestore + " -q " + t / "in.xen" + " --out " + t / "d"), 0);
  ASSERT_EQ(run(kSave + " " + t / "d" + " -o " + t / "out.xen"), 0);
  EXPECT_EQ(slurp(t / "out.xen"), slurp(t / "in.xen"));
  EXPECT_EQ(run(kOracle + " -q -f libxl -i " + t / "out.xen"), 0);
  // The pages go into a file with copy_file_range and into a pipe with
  // splice, into zstd through a buffer: the same octets every way.
  ASSERT_EQ(run(kSave + " " + t / "d" + " -o - | cat > " + t / "piped.xen"), 0);
  EXPECT_EQ(slurp(t / "piped.xen"), slurp(t / "in.xen"));
  ASSERT_EQ(run(kSave + " " + t / "d" + " --zstd -o - | zstd -dc > " + t / "unzstd.xen"), 0);
  EXPECT_EQ(slurp(t / "unzstd.xen"), slurp(t / "in.xen"));
}

// A memory.raw shorter than the pfns it is said to hold (a file system
// that dropped its tail): the pages past its end are sent as zeros, into a
// file and into a pipe alike.
TEST(Save, PagesPastTheEndOfMemoryRawAreZeros) {
  TempDir t;
  gen::SynthOptions o;
  o.pages = 64;
  ASSERT_TRUE(gen::write_stream_to_path(t / "in.xen", o).has_value());
  ASSERT_EQ(run(kRestore + " -q " + t / "in.xen" + " --out " + t / "d"), 0);
  const std::string full = slurp(t.path / "d" / "memory.raw");
  ASSERT_EQ(full.size(), 64u * 4096);
  fs::resize_file(t.path / "d" / "memory.raw", 50 * 4096 + 100);
  ASSERT_EQ(run(kSave + " " + t / "d" + " -o " + t / "s.xen"), 0);
  ASSERT_EQ(run(kSave + " " + t / "d" + " -o - | cat > " + t / "p.xen"), 0);
  EXPECT_EQ(slurp(t / "p.xen"), slurp(t / "s.xen"));
  ASSERT_EQ(run(kRestore + " -q " + t / "s.xen" + " --out " + t / "d2"), 0);
  const std::string mem = slurp(t.path / "d2" / "memory.raw");
  ASSERT_EQ(mem.size(), 64u * 4096);
  EXPECT_EQ(mem.substr(0, 50 * 4096), full.substr(0, 50 * 4096));
  EXPECT_EQ(mem.substr(50 * 4096), std::string(14 * 4096, '\0'));
}

// Holes: pfns outside memory.pfn_ranges are not sent.
TEST(Save, HolesAreNotSent) {
  TempDir t;
  gen::SynthOptions o;
  o.pages = 64;
  ASSERT_TRUE(gen::write_stream_to_path(t / "in.xen", o).has_value());
  ASSERT_EQ(run(kRestore + " -q " + t / "in.xen" + " --out " + t / "d"), 0);
  // Forge a domain with a hole: pfns [0,10) and [40,64).
  json m = json::parse(slurp(t.path / "d" / "manifest.json"));
  m["memory"]["pfn_ranges"] = json::array({json::array({0, 10}), json::array({40, 64})});
  m["memory"]["pages_present"] = 34;
  m["memory"]["pages_by_type"]["notab"] = 34;
  std::ofstream(t.path / "d" / "manifest.json") << m.dump();
  const json sum = save_json(t / "d" + " --libxc -o " + t / "s.xen", t / "err");
  EXPECT_EQ(sum.at("pages"), 34);
  ASSERT_EQ(run(kRestore + " -q " + t / "s.xen" + " --out " + t / "d2"), 0);
  const json m2 = json::parse(slurp(t.path / "d2" / "manifest.json"));
  EXPECT_EQ(m2["memory"]["pfn_ranges"], m["memory"]["pfn_ranges"]);
  const std::string mem = slurp(t.path / "d2" / "memory.raw");
  ASSERT_EQ(mem.size(), 64u * 4096);
  EXPECT_EQ(mem.substr(10 * 4096, 30 * 4096), std::string(30 * 4096, '\0'));
  EXPECT_EQ(mem.substr(40 * 4096), slurp(t.path / "d" / "memory.raw").substr(40 * 4096));
}

// DIR1 in full, then only what changed; the restore fails over (no END, as a
// Remus primary never sends one) with exactly the last directory's state.
TEST(Save, CheckpointedSendsOnlyChangesAndRestoresTheLastCheckpoint) {
  TempDir t;
  gen::SynthOptions o;
  o.pages = 256;
  o.emulator_context = true;
  ASSERT_TRUE(gen::write_stream_to_path(t / "in.xen", o).has_value());
  ASSERT_EQ(run(kRestore + " -q " + t / "in.xen" + " --out " + t / "d0"), 0);
  fs::copy(t.path / "d0", t.path / "d1");
  fs::copy(t.path / "d0", t.path / "d2");
  {
    std::fstream f(t.path / "d1" / "memory.raw", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5 * 4096 + 17);
    f << "changed";
    f.seekp(100 * 4096);
    f << "also";
  }
  fs::copy_file(t.path / "d1" / "memory.raw", t.path / "d2" / "memory.raw",
                fs::copy_options::overwrite_existing);
  {
    std::fstream f(t.path / "d2" / "memory.raw", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200 * 4096 + 4095);
    f << "z";
    // New device state: one octet of the "timer" section's payload.
    std::string q = slurp(t.path / "d2" / "qemu-resume.1");
    ASSERT_GT(q.size(), 0x1cu);
    q[0x1c] = static_cast<char>(q[0x1c] ^ 0x5A);
    std::ofstream(t.path / "d2" / "qemu-resume.1", std::ios::binary | std::ios::trunc) << q;
  }

  const json sum = save_json(t / "d0 " + t / "d1 " + t / "d2" + " --checkpointed -o " + t / "c.xen",
                             t / "err");
  EXPECT_EQ(sum.at("pages"), 256 + 2 + 1);
  EXPECT_EQ(sum.at("checkpoints"), 3);
  EXPECT_EQ(sum.at("layout"), "libxl");
  EXPECT_EQ(run(kVerify + " " + t / "c.xen >" + t / "v.out"), 0) << slurp(t / "v.out");
  EXPECT_EQ(run(kRestore + " -q " + t / "c.xen" + " --out " + t / "r"), 3);
  EXPECT_EQ(slurp(t.path / "r" / "memory.raw"), slurp(t.path / "d2" / "memory.raw"));
  EXPECT_EQ(slurp(t.path / "r" / "qemu-resume.1"), slurp(t.path / "d2" / "qemu-resume.1"));
  const json rm = json::parse(slurp(t.path / "r" / "manifest.json"));
  EXPECT_EQ(rm["checkpoints"]["committed"], 3);

  // A bare libxc checkpointed stream commits at every CHECKPOINT.
  EXPECT_EQ(run(kSave + " " + t / "d0 " + t / "d1" + " --checkpointed --libxc -o " + t / "x.xen"), 0);
  EXPECT_EQ(run(kRestore + " -q " + t / "x.xen" + " --out " + t / "rx"), 3);
  EXPECT_EQ(slurp(t.path / "rx" / "memory.raw"), slurp(t.path / "d1" / "memory.raw"));
}

TEST(Save, RefusesWhatIsNotARestoredDomain) {
  TempDir t;
  fs::create_directory(t.path / "empty");
  EXPECT_EQ(run(kSave + " " + t / "empty" + " -o " + t / "o.xen 2>" + t / "err"), 2);
  EXPECT_NE(slurp(t / "err").find("no manifest.json (not a restored domain directory)"), std::string::npos)
      << slurp(t / "err");
  EXPECT_FALSE(fs::exists(t.path / "o.xen"));
  gen::SynthOptions o;
  o.pages = 8;
  ASSERT_TRUE(gen::write_stream_to_path(t / "in.xen", o).has_value());
  ASSERT_EQ(run(kRestore + " -q " + t / "in.xen" + " --out " + t / "d"), 0);
  fs::create_directory(t.path / "d" / ".xenstream");
  EXPECT_EQ(run(kSave + " " + t / "d" + " -o " + t / "o.xen 2>" + t / "err"), 2);
  EXPECT_NE(slurp(t / "err").find("run `streamrestore --recover"), std::string::npos) << slurp(t / "err");
  EXPECT_EQ(run(kSave + " " + t / "d " + t / "d" + " -o " + t / "o.xen 2>/dev/null"), 2);
}
