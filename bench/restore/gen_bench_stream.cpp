// Writes a large synthetic HVM stream for bench/restore/run.sh: a libxl
// stream whose libxc image carries SIZE_MIB of non-zero pages in PAGE_DATA
// records of 1024 pages (as Xen's saver batches them), then optionally
// CHECKPOINTS checkpoints that each resend DIRTY_MIB of those pages. With
// --sparse, three batches in four are zero pages (a guest whose memory is
// mostly untouched): a restore keeps them as holes, so a large guest costs
// disk only for its quarter of data.
//
//   gen_bench_stream [--sparse] SIZE_MIB [CHECKPOINTS DIRTY_MIB] > stream
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/record_writer.h>

using namespace xenstream;
namespace xc = format::libxc;
namespace xl = format::libxl;

namespace {

void check(const Expected<void>& r) {
  if (!r) {
    std::fprintf(stderr, "gen_bench_stream: %s\n", r.error().describe().c_str());
    std::exit(2);
  }
}

// Fills one batch of pages with cheap pseudo-random data (never all zero).
void fill(std::vector<std::byte>& buf, std::uint64_t seed) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  auto* w = reinterpret_cast<std::uint64_t*>(buf.data());
  for (std::size_t i = 0; i < buf.size() / 8; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w[i] = x | 1;
  }
}

bool sparse = false;

void write_pages(RecordWriter& w, std::uint64_t first_pfn, std::uint64_t pages, std::uint64_t seed,
                 std::vector<std::byte>& buf) {
  constexpr std::uint64_t kBatch = xc::kSaverBatchMax;
  std::vector<std::uint64_t> entries;
  std::vector<Bytes> spans;
  for (std::uint64_t done = 0; done < pages; done += kBatch) {
    const std::uint64_t n = std::min(kBatch, pages - done);
    if (sparse && (done / kBatch) % 4 != 0) {
      std::fill(buf.begin(), buf.end(), std::byte{0});
    } else {
      fill(buf, seed + done);
    }
    entries.clear();
    spans.clear();
    for (std::uint64_t i = 0; i < n; ++i) {
      entries.push_back(first_pfn + done + i);
      spans.push_back(Bytes(buf.data() + i * xc::kPageSize, xc::kPageSize));
    }
    check(w.append_page_data(entries, spans));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "--sparse") {
    sparse = true;
    --argc;
    ++argv;
  }
  if (argc != 2 && argc != 4) {
    std::fprintf(stderr, "usage: gen_bench_stream [--sparse] SIZE_MIB [CHECKPOINTS DIRTY_MIB] > stream\n");
    return 2;
  }
  const std::uint64_t pages = std::strtoull(argv[1], nullptr, 10) * 256;
  const std::uint64_t checkpoints = argc == 4 ? std::strtoull(argv[2], nullptr, 10) : 0;
  const std::uint64_t dirty = argc == 4 ? std::strtoull(argv[3], nullptr, 10) * 256 : 0;
  FdSink out(1, "<stdout>");
  RecordWriter w(out);
  std::vector<std::byte> buf(xc::kSaverBatchMax * xc::kPageSize);
  // A context the rules accept (streamrestore judges every record): HEADER
  // (magic, version 1, changeset, cpuid, gtsc_khz), one CPU record of Xen's
  // size, END.
  const std::vector<std::byte> hvm_context = [] {
    constexpr std::size_t kCpu = 1032;
    std::vector<std::byte> c(8 + 24 + 8 + kCpu + 8, std::byte{0});
    put_u16(c.data(), 1, ByteOrder::kLittle);  // HEADER descriptor
    put_u32(c.data() + 4, 24, ByteOrder::kLittle);
    put_u32(c.data() + 8, 0x54381286, ByteOrder::kLittle);
    put_u32(c.data() + 12, 1, ByteOrder::kLittle);
    put_u32(c.data() + 24, 0x000806ec, ByteOrder::kLittle);
    put_u32(c.data() + 28, 2400000, ByteOrder::kLittle);
    put_u16(c.data() + 32, 2, ByteOrder::kLittle);  // CPU 0
    put_u32(c.data() + 36, kCpu, ByteOrder::kLittle);
    return c;  // END: the last 8 octets stay zero
  }();
  check(w.write_libxl_header());
  check(w.append(xl::RecordType::kLibxcContext));
  check(w.write_image_header(3));
  check(w.write_domain_header(xc::kDomainX86Hvm, 4, 17));
  check(w.append(xc::RecordType::kStaticDataEnd));
  write_pages(w, 0, pages, 1, buf);
  auto end_of_checkpoint = [&](std::uint64_t k) {
    check(w.append_tsc_info(0, 2000000, 1000 + k, 1));
    check(w.append(xc::RecordType::kHvmContext, {Bytes(hvm_context)}));
    const std::pair<std::uint64_t, std::uint64_t> params[] = {{1, 0xfeffc}, {17, 0xfefff}};
    check(w.append_hvm_params(params));
  };
  end_of_checkpoint(0);
  if (checkpoints > 0) {
    check(w.append(xc::RecordType::kCheckpoint));
    check(w.append(xl::RecordType::kCheckpointEnd));
  }
  for (std::uint64_t k = 1; k < checkpoints; ++k) {
    // Each checkpoint resends a different stretch of memory.
    const std::uint64_t start = (k * dirty) % std::max<std::uint64_t>(pages, 1);
    write_pages(w, start, std::min(dirty, pages - start), 1000 + k, buf);
    end_of_checkpoint(k);
    check(w.append(xc::RecordType::kCheckpoint));
    check(w.append(xl::RecordType::kCheckpointEnd));
  }
  check(w.append(xc::RecordType::kEnd));
  auto fin = w.finish();
  if (!fin) {
    std::fprintf(stderr, "gen_bench_stream: %s\n", fin.error().describe().c_str());
    return 2;
  }
  return 0;
}
