// bench_walk: walks every record of a stream the way a verifier would, and
// touches every page: container detection, StreamCursor over both layers,
// decode_page_data on each PAGE_DATA and the first octet of each page summed.
// Input is a file (mapped), a pipe or stdin (bounded window), zstd or not.
//
//   bench_walk [--json] [--skip-pages] FILE|-
//
// --skip-pages reads each PAGE_DATA record's count and entries only and
// lets its pages go past (Source::skip: from a pipe, splice to /dev/null,
// never through user space), as streamverify does; the checksum then sums
// the entries' pfns instead of the pages' first octets.
//
// Prints records, pages, bytes, time and throughput on stderr (or a JSON
// object on stdout with --json). Exit 0 when the stream walked cleanly, 1
// when it is bad, 2 on usage or I/O errors.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include <xenstream/codecs/open_input.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/stream_cursor.h>

namespace {

using namespace xenstream;

struct Stats {
  std::uint64_t records = 0;
  std::uint64_t page_records = 0;
  std::uint64_t pages = 0;
  std::uint64_t checksum = 0;
};

Expected<void> walk(Source& src, Stats& st, bool skip_pages) {
  auto c = read_container(src);
  if (!c) return std::move(c).error();
  StreamCursor cur(src, c->payload);
  XS_TRY(cur.start());
  while (!cur.done()) {
    auto rec = skip_pages ? cur.next_head(8) : cur.next();
    if (!rec) return std::move(rec).error();
    ++st.records;
    const bool pages = rec->layer == Layer::kLibxc && rec->type == 0x01;
    if (!rec->complete()) {
      std::size_t want = RecordReader::kWholeBody;
      if (pages && rec->body.size() >= 8) {
        want = static_cast<std::size_t>(std::min<std::uint64_t>(8 + 8 * std::uint64_t{rec->fields().u32(0)}, rec->length));
      }
      if (rec->body.size() < want) rec = cur.extend(want);
      if (!rec) return std::move(rec).error();
    }
    if (pages && !rec->complete()) {
      // The pages are skipped by the next call (splice to /dev/null).
      auto pd = decode_page_data(*rec);
      if (!pd) return std::move(pd).error();
      ++st.page_records;
      for (std::uint32_t i = 0; i < pd->count; ++i) st.checksum += pd->pfn(i);
      st.pages += pd->data_pages;
    } else if (pages) {
      auto pd = decode_page_data(*rec);
      if (!pd) return std::move(pd).error();
      ++st.page_records;
      const std::byte* p = pd->pages.data();
      for (std::uint32_t i = 0; i < pd->data_pages; ++i) {
        st.checksum += std::to_integer<unsigned>(p[std::size_t{i} * 4096]);
      }
      st.pages += pd->data_pages;
    }
  }
  return cur.finish();
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  bool skip_pages = false;
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--skip-pages") {
      skip_pages = true;
    } else if (a == "-h" || a == "--help") {
      std::printf(
          "usage: bench_walk [--json] [--skip-pages] FILE|-\n\n"
          "Walks every record of a Xen migration stream (any container, zstd or not) and\n"
          "touches the first octet of every page, to measure libstream's reading speed.\n"
          "FILE is mapped; - reads stdin through a bounded window.\n"
          "--skip-pages: read PAGE_DATA entries only; pages bypass user space (splice).\n");
      return 0;
    } else if (path.empty()) {
      path = a;
    } else {
      std::fprintf(stderr, "bench_walk: unexpected argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: bench_walk [--json] FILE|-\n");
    return 2;
  }

  const auto t0 = std::chrono::steady_clock::now();
  auto in = codecs::open_input(path, /*read_ahead=*/!skip_pages);
  if (!in) {
    std::fprintf(stderr, "bench_walk: %s: %s\n", path.c_str(), in.error().message.c_str());
    return 2;
  }
  Stats st;
  auto ok = walk(*in->source, st, skip_pages);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::uint64_t bytes = in->source->position();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double mbps = secs > 0 ? static_cast<double>(bytes) / secs / 1e6 : 0;

  if (json) {
    std::printf(
        "{\"input\": \"%s\", \"ok\": %s, \"records\": %llu, \"page_data_records\": %llu, "
        "\"pages\": %llu, \"bytes\": %llu, \"seconds\": %.6f, \"mb_per_s\": %.1f, "
        "\"max_rss_kib\": %ld, \"checksum\": %llu}\n",
        path.c_str(), ok ? "true" : "false", static_cast<unsigned long long>(st.records),
        static_cast<unsigned long long>(st.page_records), static_cast<unsigned long long>(st.pages),
        static_cast<unsigned long long>(bytes), secs, mbps, ru.ru_maxrss,
        static_cast<unsigned long long>(st.checksum));
  } else {
    std::fprintf(stderr,
                 "bench_walk: %s: %llu records, %llu pages, %llu bytes in %.3f s (%.0f MB/s), "
                 "max RSS %ld KiB, checksum %llu\n",
                 path.c_str(), static_cast<unsigned long long>(st.records),
                 static_cast<unsigned long long>(st.pages), static_cast<unsigned long long>(bytes),
                 secs, mbps, ru.ru_maxrss, static_cast<unsigned long long>(st.checksum));
  }
  if (!ok) {
    std::fprintf(stderr, "bench_walk: %s: %s\n", path.c_str(), ok.error().describe().c_str());
    return ok.error().code == ErrorCode::kIo ? 2 : 1;
  }
  return 0;
}
