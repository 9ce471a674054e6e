// Restoring plain streams into a directory: layout, manifest, blobs, sparse
// memory, and the refusals a restore makes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/record_writer.h>
#include "tests/restore/stream_builder.h"
#include "tools/restore/journal.h"
#include "tools/restore/page_map.h"

namespace xenstream::restore {
namespace {

using namespace testing;
using nlohmann::json;
namespace xc = format::libxc;

json manifest_of(const std::string& dir) {
  auto m = read_file(dir + "/manifest.json");
  if (!m) return json();
  return json::parse(m->begin(), m->end(), nullptr, false);
}

class RestoreTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = temp_dir("plain"); }
  void TearDown() override { remove_tree(root_); }
  std::string dir(const std::string& name = "out") { return root_ + "/" + name; }
  std::string root_;
};

StreamSpec plain_hvm() {
  StreamSpec s;
  PartSpec p;
  p.pages = {{0, 1}, {1, 2}, {2, 0}, {3, 3}, {9, 4}, {10, 5}, {11, 6}};
  p.hvm_context = hvm_context_blob(3, 0x42);
  // Indexes a Xen saver sends (others break LIBXC-PARAMS-04/05).
  p.hvm_params = {{1, 0xfeffc}, {17, 0xfefff}, {38, 5}};
  p.tsc_nsec = 123456789;
  p.xenstore = {{"physmap/f0000000/start_addr", "f0000000"}, {"physmap/f0000000/size", "800000"}};
  p.emulator_context = qemu_state_blob(0x5a, 1001);
  s.parts.push_back(p);
  return s;
}

TEST_F(RestoreTest, PlainHvmStreamRestoresEveryPiece) {
  const BuiltStream b = build_stream(plain_hvm());
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << (r.error ? r.error->describe() : "");
  EXPECT_EQ(exit_status(r.status), 0);
  EXPECT_EQ(r.checkpoints, 0u);
  EXPECT_FALSE(r.checkpointed);
  EXPECT_EQ(r.pages, 7u);
  EXPECT_EQ(r.bytes, b.bytes.size());
  EXPECT_TRUE(r.warnings.empty());
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");

  const json m = manifest_of(dir());
  EXPECT_EQ(m["status"], "complete");
  EXPECT_EQ(m["domain"]["type"], "hvm");
  EXPECT_EQ(m["domain"]["xen_version"], "4.17");
  EXPECT_EQ(m["source"]["payload"], "libxl");
  EXPECT_EQ(m["source"]["container"], "none");
  EXPECT_EQ(m["memory"]["size"], 12 * 4096);
  EXPECT_EQ(m["memory"]["pages_present"], 7);
  EXPECT_EQ(m["memory"]["pfn_ranges"], json::parse("[[0,4],[9,12]]"));
  EXPECT_EQ(m["memory"]["pages_by_type"], json::parse(R"({"notab":7})"));
  EXPECT_EQ(m["vcpus"]["count"], 3);
  EXPECT_EQ(m["vcpus"]["source"], "hvm_context");
  EXPECT_EQ(m["hvm"]["params"]["STORE_PFN"], 0xfeffc);
  EXPECT_EQ(m["hvm"]["params"]["CONSOLE_PFN"], 0xfefff);
  EXPECT_EQ(m["hvm"]["params"]["MCA_CAP"], 5);
  EXPECT_EQ(m["tsc"]["nsec"], 123456789);
  EXPECT_EQ(m["tsc"]["khz"], 2000000);
  EXPECT_EQ(m["tsc"]["mode_name"], "default");
  EXPECT_EQ(m["emulator"]["context"]["file"], "qemu-resume.1");
  EXPECT_EQ(m["emulator"]["context"]["size"], qemu_state_blob(0x5a, 1001).size());
  EXPECT_EQ(m["emulator"]["context"]["emulator_id"], 2);
  EXPECT_EQ(m["emulator"]["xenstore"]["keys"], 2);
  EXPECT_EQ(m["checkpoints"]["checkpointed"], false);
  EXPECT_EQ(m["static_data_end"], true);
  EXPECT_EQ(m["end"]["outcome"], "complete");
  EXPECT_EQ(m["files"], json::parse(R"(["hvm-context.bin","memory.raw","qemu-resume.1","xenstore.json"])"));
  // libxl's restore file is private to its owner.
  struct stat st {};
  ASSERT_EQ(::stat((dir() + "/qemu-resume.1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(RestoreTest, EmulatorFileIsTheBodyWithoutTheEightOctetSubHeader) {
  // An odd length checks that record padding is not copied either.
  StreamSpec s = plain_hvm();
  std::vector<std::byte> blob = qemu_state_blob(0x31, 40);
  if (blob.size() % 8 == 0) blob = qemu_state_blob(0x31, 41);
  s.parts[0].emulator_context = blob;
  const BuiltStream b = build_stream(s);
  ASSERT_EQ(restore_bytes(Bytes(b.bytes), dir()).status, RestoreStatus::kComplete);
  EXPECT_EQ(read_file(dir() + "/qemu-resume.1"), blob);
}

TEST_F(RestoreTest, DomidNamesTheEmulatorFile) {
  const BuiltStream b = build_stream(plain_hvm());
  RestoreOptions o;
  o.domid = 37;
  ASSERT_EQ(restore_bytes(Bytes(b.bytes), dir(), o).status, RestoreStatus::kComplete);
  EXPECT_TRUE(read_file(dir() + "/qemu-resume.37").has_value());
  EXPECT_FALSE(read_file(dir() + "/qemu-resume.1").has_value());
  EXPECT_EQ(manifest_of(dir())["domain"]["domid"], 37);
}

TEST_F(RestoreTest, ZeroPagesNeverWrittenStayHoles) {
  StreamSpec s;
  PartSpec p;
  // 256 zero pages then one data page at the far end.
  for (std::uint64_t pfn = 0; pfn < 256; ++pfn) p.pages.push_back({pfn, 0});
  p.pages.push_back({1000, 7});
  p.batch = 64;
  p.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p);
  const BuiltStream b = build_stream(s);
  ASSERT_EQ(restore_bytes(Bytes(b.bytes), dir()).status, RestoreStatus::kComplete);
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
  struct stat st {};
  ASSERT_EQ(::stat((dir() + "/memory.raw").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 1001 * 4096);
  // Only the one data page takes space (allow file-system granularity).
  EXPECT_LE(st.st_blocks * 512, 64 * 1024);
  EXPECT_EQ(manifest_of(dir())["memory"]["pfn_ranges"], json::parse("[[0,256],[1000,1001]]"));
}

TEST_F(RestoreTest, ZeroPageOverwritingDataIsWritten) {
  StreamSpec s;
  PartSpec p;
  p.pages = {{4, 9}, {4, 0}};  // data, then zeros for the same pfn
  p.batch = 1;
  p.hvm_context = hvm_context_blob(1, 1);
  s.parts.push_back(p);
  const BuiltStream b = build_stream(s);
  ASSERT_EQ(restore_bytes(Bytes(b.bytes), dir()).status, RestoreStatus::kComplete);
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
}

TEST_F(RestoreTest, PageTypesAreKeptForEveryPfn) {
  StreamSpec s;
  s.hvm = false;
  PartSpec p;
  // The page tables are empty (seed 0): no entry refers beyond the p2m.
  p.pages = {{0, 1}, {1, 0, 1}, {2, 0, 0xC}, {3, 0, 0xF}, {4, 0, 0xE}, {5, 0, 4}, {6, 0, 0xD}};
  // Contexts the rules accept (start_info pfn 0, a NOTAB page; cr3 pfn 2,
  // the pinned L4; no GDT frames), told apart by their first octet.
  for (std::uint32_t v : {0u, 1u}) {
    p.vcpu_basic[v] = std::vector<std::byte>(xc::kVcpuBasicSize64, std::byte{0});
    p.vcpu_basic[v].front() = std::byte{static_cast<unsigned char>(3 + v)};
    p.vcpu_basic[v][5008 + 1] = std::byte{0x20};  // ctrlreg[3] = 2 << 12
  }
  p.shared_info = std::vector<std::byte>(4096, std::byte{9});
  s.parts.push_back(p);
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << (r.error ? r.error->describe() : "");
  EXPECT_EQ(compare_dir(dir(), b.final_model, false), "");
  const json m = manifest_of(dir());
  EXPECT_EQ(m["domain"]["type"], "pv");
  EXPECT_EQ(m["pv"]["guest_width"], 8);
  EXPECT_EQ(m["pv"]["pt_levels"], 4);
  EXPECT_EQ(m["pv"]["p2m_frames"]["end_pfn"], 511);
  EXPECT_EQ(m["vcpus"]["count"], 2);
  EXPECT_EQ(m["vcpus"]["records"]["1"]["basic"]["file"], "vcpu1-basic.bin");
  EXPECT_EQ(m["memory"]["typed_ranges"],
            json::parse(R"([[1,2,"l1tab"],[2,3,"l4tab_pinned"],[3,4,"xtab"],[4,5,"xalloc"],[5,6,"l4tab"],[6,7,"broken"]])"));
  EXPECT_EQ(m["memory"]["pages_by_type"],
            json::parse(R"({"notab":1,"l1tab":1,"l4tab_pinned":1,"xtab":1,"xalloc":1,"l4tab":1,"broken":1})"));
  // XTAB and BROKEN are not populated; XALLOC is (and reads as zeros).
  EXPECT_EQ(m["memory"]["pfn_ranges"], json::parse("[[0,3],[4,6]]"));
  EXPECT_EQ(read_file(dir() + "/p2m-frames.bin")->size(), 8u);
}

TEST_F(RestoreTest, XlContainerConfigIsKept) {
  StreamSpec s = plain_hvm();
  s.xl_container = true;
  const BuiltStream b = build_stream(s);
  ASSERT_EQ(restore_bytes(Bytes(b.bytes), dir()).status, RestoreStatus::kComplete);
  auto cfg = read_file(dir() + "/xl-config.json");
  ASSERT_TRUE(cfg);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(cfg->data()), cfg->size()), s.xl_config);
  const json m = manifest_of(dir());
  EXPECT_EQ(m["config"]["file"], "xl-config.json");
  EXPECT_EQ(m["source"]["container"], "xl");
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
}

TEST_F(RestoreTest, BareLibxcStream) {
  StreamSpec s = plain_hvm();
  s.libxl = false;
  s.parts[0].xenstore.clear();
  s.parts[0].emulator_context.reset();
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << r.error->describe();
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
  EXPECT_EQ(manifest_of(dir())["source"]["payload"], "libxc");
}

TEST_F(RestoreTest, TruncatedPlainStreamLeavesNothing) {
  const BuiltStream b = build_stream(plain_hvm());
  // Cut 4 octets into the record before the libxl END.
  const auto cut = Bytes(b.bytes).first(b.bytes.size() - 12);
  const RestoreReport r = restore_bytes(cut, dir());
  EXPECT_EQ(r.status, RestoreStatus::kInvalid);
  EXPECT_EQ(exit_status(r.status), 1);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code, ErrorCode::kTruncated);
  // The rule streamverify names for it.
  EXPECT_NE(r.error->message.find("[STREAM-04]"), std::string::npos) << r.error->message;
  // The directory the restore created is gone again.
  EXPECT_TRUE(list_dir(root_).empty());
}

TEST_F(RestoreTest, MissingLibxlEndRestoresWithAWarning) {
  // Xen's libxl reads the end of input after the last record as END, and
  // restores such a stream (tests/xenhost judged it); so does streamrestore.
  const BuiltStream b = build_stream(plain_hvm());
  const auto cut = Bytes(b.bytes).first(b.bytes.size() - 8);  // drop the libxl END
  const RestoreReport r = restore_bytes(cut, dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << (r.error ? r.error->describe() : "");
  EXPECT_EQ(compare_dir(dir(), b.final_model, true), "");
  bool warned = false;
  for (const auto& w : r.warnings) warned = warned || w.find("[STREAM-07]") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(RestoreTest, TruncationIntoAnExistingEmptyDirLeavesItEmpty) {
  const BuiltStream b = build_stream(plain_hvm());
  ASSERT_EQ(::mkdir(dir().c_str(), 0755), 0);
  const RestoreReport r = restore_bytes(Bytes(b.bytes).first(b.bytes.size() / 2), dir());
  EXPECT_EQ(r.status, RestoreStatus::kInvalid);
  EXPECT_TRUE(list_dir(dir()).empty());
}

TEST_F(RestoreTest, NonEmptyDirectoryIsRefused) {
  ASSERT_EQ(::mkdir(dir().c_str(), 0755), 0);
  write_file(dir() + "/precious", Bytes());
  DirectoryOptions o;
  o.dir = dir();
  auto b = DirectoryBackend::create(o);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code, ErrorCode::kUsage);
  EXPECT_EQ(b.error().message, dir() + " is not empty (it holds precious); streamrestore writes into a new or empty directory");
  EXPECT_EQ(list_dir(dir()), std::vector<std::string>{"precious"});
}

TEST_F(RestoreTest, PvRecordInHvmStreamIsRefused) {
  StreamSpec s = plain_hvm();
  s.parts[0].extra_libxc.push_back({0x07, std::vector<std::byte>(4096)});  // SHARED_INFO
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  EXPECT_EQ(r.status, RestoreStatus::kInvalid);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->message,
            "record #8 SHARED_INFO: a PV-only record in an HVM stream: Xen's restorer does not handle it "
            "[LIBXC-REC-06]");
  EXPECT_TRUE(list_dir(root_).empty());
}

TEST_F(RestoreTest, UnknownOptionalRecordsAreSkippedAndCounted) {
  StreamSpec s = plain_hvm();
  s.parts[0].extra_libxc.push_back({0x80000123u, std::vector<std::byte>(5, std::byte{1})});
  s.parts[0].extra_libxc.push_back({0x80000123u, {}});
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete);
  const json m = manifest_of(dir());
  ASSERT_EQ(m["stream"]["skipped_records"].size(), 1u);
  EXPECT_EQ(m["stream"]["skipped_records"][0]["type"], 0x80000123u);
  EXPECT_EQ(m["stream"]["skipped_records"][0]["count"], 2);
  EXPECT_EQ(m["stream"]["skipped_records"][0]["layer"], "libxc");
}

TEST_F(RestoreTest, UnknownMandatoryRecordIsRefused) {
  StreamSpec s = plain_hvm();
  s.parts[0].extra_libxc.push_back({0x55, {}});
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  EXPECT_EQ(r.status, RestoreStatus::kInvalid);
  EXPECT_NE(r.error->message.find("unknown mandatory record type 0x55 [LIBXC-REC-03]"), std::string::npos)
      << r.error->message;
}

TEST_F(RestoreTest, PfnAboveTheLimitIsRefusedBeforeWriting) {
  StreamSpec s = plain_hvm();
  s.parts[0].pages.push_back({std::uint64_t{1} << 40, 1});
  const BuiltStream b = build_stream(s);
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  EXPECT_EQ(r.status, RestoreStatus::kInvalid);
  EXPECT_EQ(r.error->code, ErrorCode::kLimit);
  EXPECT_NE(r.error->message.find("pfn[1] 0x10000000000 is above the highest pfn accepted, 0xffffffff"),
            std::string::npos)
      << r.error->message;
}

TEST_F(RestoreTest, TrailingBytesAreAWarning) {
  BuiltStream b = build_stream(plain_hvm());
  const std::size_t end = b.bytes.size();
  b.bytes.resize(end + 3, std::byte{7});
  const RestoreReport r = restore_bytes(Bytes(b.bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete);
  ASSERT_EQ(r.warnings.size(), 1u);
  // STREAM-06, as streamverify prints it (a warning: Xen never reads them).
  EXPECT_EQ(r.warnings[0], "offset " + hex(end) + ", input: 3 octets follow the final END record [" + hex(end) +
                               ", " + hex(end + 3) + "); Xen never reads them [STREAM-06]");
}

TEST_F(RestoreTest, VerifyPassComparesInsteadOfWriting) {
  // After VERIFY the saver resends pages; they are compared, not written.
  StreamSpec s = plain_hvm();
  s.parts[0].extra_libxc.push_back({0x0d, {}});
  const BuiltStream base = build_stream(s);
  // Append a PAGE_DATA after VERIFY by hand: pfn 0 with the same data (match)
  // and pfn 1 with other data (mismatch).
  BufferSink extra;
  RecordWriter w(extra);
  const auto p0 = page_bytes(0, 1);
  const auto p1 = page_bytes(1, 99);
  const std::uint64_t entries[] = {0, 1};
  const Bytes pages[] = {Bytes(p0), Bytes(p1)};
  ASSERT_TRUE(w.append_page_data(entries, pages));
  std::vector<std::byte> bytes = base.bytes;
  // Insert before the libxc END: find it as the record after VERIFY.
  const std::vector<std::byte> verify_rec = {std::byte{0x0d}, std::byte{0}, std::byte{0}, std::byte{0},
                                             std::byte{0},    std::byte{0}, std::byte{0}, std::byte{0}};
  auto it = std::search(bytes.begin(), bytes.end(), verify_rec.begin(), verify_rec.end());
  ASSERT_NE(it, bytes.end());
  bytes.insert(it + 8, extra.data().begin(), extra.data().end());
  const RestoreReport r = restore_bytes(Bytes(bytes), dir());
  ASSERT_EQ(r.status, RestoreStatus::kComplete) << r.error->describe();
  EXPECT_EQ(compare_dir(dir(), base.final_model, true), "");
  const json m = manifest_of(dir());
  EXPECT_EQ(m["stream"]["verify"]["pages"], 2);
  EXPECT_EQ(m["stream"]["verify"]["mismatches"], 1);
}

TEST(RestorePageMap, RunsAndCounts) {
  PageMap m;
  m.at(5) = PageMap::kSeen | PageMap::kPopulated;
  m.at(6) = PageMap::kSeen | PageMap::kPopulated;
  m.at(4096 * 3 + 1) = PageMap::kSeen | 0xF;
  EXPECT_EQ(m.get(7), 0);
  EXPECT_EQ(m.populated_end(), 7u);
  const auto runs = m.runs(PageMap::kPopulated);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].begin, 5u);
  EXPECT_EQ(runs[0].end, 7u);
  EXPECT_EQ(m.count_by_type()[0xF], 1u);
  EXPECT_EQ(m.count_by_type()[0], 2u);
  EXPECT_EQ(m.chunk_count(), 2u);
}

TEST(RestoreJournal, RoundTripAndDamage) {
  Journal j;
  j.checkpoint = 7;
  j.memory_size = 0x5000;
  j.pages = {{(std::uint64_t{1} << 60) | 3, 0}, {4, Journal::kNoData}};
  j.renames = {{"memory.raw", "memory.raw"}, {"manifest.json", "manifest.json"}};
  std::vector<std::byte> data = encode_journal(j);
  auto back = decode_journal(Bytes(data));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->checkpoint, 7u);
  EXPECT_EQ(back->memory_size, 0x5000u);
  ASSERT_EQ(back->pages.size(), 2u);
  EXPECT_EQ(back->pages[0].entry, (std::uint64_t{1} << 60) | 3);
  EXPECT_EQ(back->pages[1].slot, Journal::kNoData);
  ASSERT_EQ(back->renames.size(), 2u);
  EXPECT_EQ(back->renames[1].to, "manifest.json");
  // Any flipped octet or a cut is refused.
  for (std::size_t i = 0; i < data.size(); ++i) {
    auto bad = data;
    bad[i] ^= std::byte{0x20};
    EXPECT_FALSE(decode_journal(Bytes(bad))) << "octet " << i;
  }
  for (std::size_t n = 0; n < data.size(); ++n) {
    EXPECT_FALSE(decode_journal(Bytes(data).first(n))) << "length " << n;
  }
  auto bad = data;
  bad[0] = std::byte{'Y'};
  EXPECT_EQ(decode_journal(Bytes(bad)).error().message, "commit journal: wrong magic");
}

TEST(RestoreJournal, NamesCannotEscapeTheDirectory) {
  EXPECT_TRUE(journal_name_ok("qemu-resume.12"));
  EXPECT_FALSE(journal_name_ok("../x"));
  EXPECT_FALSE(journal_name_ok(".xenstream"));
  EXPECT_FALSE(journal_name_ok("a/b"));
  EXPECT_FALSE(journal_name_ok(""));
  Journal j;
  j.renames = {{"ok", "../../etc/passwd"}};
  EXPECT_FALSE(decode_journal(Bytes(encode_journal(j))));
}

}  // namespace
}  // namespace xenstream::restore
