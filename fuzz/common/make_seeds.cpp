// Writes the generated seed corpora: make_seeds OUTDIR creates
// OUTDIR/<target>/<sample> for every fuzz target. Run by the build, so that
// the seeds follow the writer and no binary seed needs to be committed.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fuzz/common/sample_streams.h"

#if __has_include("codecs/remus/remus_codec.h")
#include <array>

#include <xenstream/codecs/remus/remus_codec.h>
#define XENSTREAM_HAVE_REMUS 1
#endif

namespace fs = std::filesystem;
using xenstream::fuzz::Sample;

namespace {

bool write_all(const fs::path& dir, const std::vector<Sample>& samples) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "make_seeds: cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
    return false;
  }
  for (const Sample& s : samples) {
    std::ofstream out(dir / s.name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(s.bytes.data()),
              static_cast<std::streamsize>(s.bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_seeds: cannot write %s\n", (dir / s.name).c_str());
      return false;
    }
  }
  return true;
}

// Deterministic filler for targets that read their input as choices
// (FuzzedDataProvider), where any bytes are a valid seed.
std::vector<Sample> choice_seeds() {
  std::vector<Sample> out;
  std::uint32_t x = 0x2545F491;
  for (std::size_t size : {16u, 64u, 256u, 1024u, 4096u}) {
    Sample s{"choices-" + std::to_string(size), {}};
    for (std::size_t i = 0; i < size; ++i) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      s.bytes.push_back(std::byte(static_cast<std::uint8_t>(x)));
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Page-walk inputs (fuzz/fuzz_page_walk.cpp): a 32-octet header choosing the
// mode, cr3 and addresses, then pages. One seed per mode, each with a chain
// of tables that maps its first address.
std::vector<Sample> page_walk_seeds() {
  std::vector<Sample> out;
  auto put = [](std::vector<std::byte>& b, std::size_t at, std::uint64_t v, unsigned n) {
    if (b.size() < at + n) b.resize(at + n);
    for (unsigned i = 0; i < n; ++i) b[at + i] = std::byte(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  const char* names[] = {"none", "2level", "pae", "long4", "long5"};
  for (unsigned mode = 0; mode < 5; ++mode) {
    std::vector<std::byte> b(32 + 6 * 4096);
    put(b, 0, mode, 1);
    put(b, 1, 3, 1);       // pse, nxe
    put(b, 2, 0xFF, 2);    // max_pfn
    put(b, 8, 1 << 12, 8); // cr3: pfn 1
    put(b, 16, 0x1234, 8); // index 0 at every level, offset 0x234
    put(b, 24, 0xffffffff81000123ull, 8);
    const unsigned size = mode == 1 ? 4 : 8;
    for (unsigned pfn = 1; pfn <= 5; ++pfn) put(b, 32 + pfn * 4096, ((pfn + 1) << 12) | 0x3, size);
    out.push_back({std::string("walk-") + names[mode], std::move(b)});
  }
  return out;
}

#ifdef XENSTREAM_HAVE_REMUS
// Page encodings for pfns 0, 1, 2, 0, 1, 2, ... (fuzz_remus decodes the k-th
// for pfn k mod 3): FULL pages first, then deltas of few and many words and
// EMPTY, as Xen's sender would produce them. The first octet picks the
// piece size.
std::vector<Sample> remus_seeds() {
  namespace remus = xenstream::codecs::remus;
  std::vector<Sample> out;
  for (std::uint8_t piece : {0, 2, 3}) {
    remus::Encoder enc(16);
    std::vector<std::byte> bytes{std::byte{piece}};
    std::array<std::array<std::byte, remus::kPageSize>, 3> pages{};
    for (int round = 0; round < 3; ++round) {
      for (std::size_t pfn = 0; pfn < 3; ++pfn) {
        auto& pg = pages[pfn];
        if (round == 1 && pfn == 0) pg[100] = std::byte{1};               // one word
        if (round == 1 && pfn == 2) for (auto& b : pg) b = std::byte{7};  // every word
        if (round == 2 && pfn == 1) for (std::size_t i = 0; i < pg.size(); i += 600) pg[i] = std::byte{9};
        enc.encode(pfn, pg, false, bytes);
      }
    }
    out.push_back({"remus-" + std::to_string(piece), std::move(bytes)});
  }
  return out;
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds OUTDIR\n");
    return 2;
  }
  const fs::path root(argv[1]);
  const auto streams = xenstream::fuzz::sample_streams();
  auto zstd = xenstream::fuzz::compressed_samples();
  zstd.insert(zstd.end(), streams.begin(), streams.begin() + 2);  // plain input too

  std::vector<Sample> blobs{{"hvm-context.bin", xenstream::fuzz::sample_hvm_context()},
                            {"qemu-device-state.bin", xenstream::fuzz::sample_qemu_blob()}};

  bool ok = true;
  ok = write_all(root / "fuzz_container", streams) && ok;
  ok = write_all(root / "fuzz_cursor", streams) && ok;
  ok = write_all(root / "fuzz_zstd", zstd) && ok;
  ok = write_all(root / "fuzz_writer_roundtrip", choice_seeds()) && ok;
  ok = write_all(root / "fuzz_verify", streams) && ok;
  ok = write_all(root / "fuzz_restore", streams) && ok;
  ok = write_all(root / "fuzz_blobs", blobs) && ok;
  ok = write_all(root / "fuzz_memview", streams) && ok;
  ok = write_all(root / "fuzz_page_walk", page_walk_seeds()) && ok;
  // Legacy heads (with and without an xl header); make_convert_seeds adds
  // whole legacy images when the converter tests' builder is there.
  std::vector<Sample> legacy;
  for (const Sample& s : streams) {
    if (s.name.find("legacy") != std::string::npos) legacy.push_back(s);
  }
  ok = write_all(root / "fuzz_convert", legacy) && ok;
#ifdef XENSTREAM_HAVE_REMUS
  ok = write_all(root / "fuzz_remus", remus_seeds()) && ok;
#endif
  return ok ? 0 : 2;
}
