// Writes the seed corpus of fuzz_convert: make_convert_seeds OUTDIR writes
// small legacy images (a few pages each) of every shape the converter
// handles, built by the converter tests' LegacyBuilder (tests/convert).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/convert/legacy_builder.h"

namespace fs = std::filesystem;
using namespace xenstream::convert;
using testing::ScenarioOptions;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_convert_seeds OUTDIR\n");
    return 2;
  }
  const fs::path dir = fs::path(argv[1]) / "fuzz_convert";
  fs::create_directories(dir);

  auto small = [] {
    ScenarioOptions o;
    o.pages = 3;
    o.batch = 2;
    o.qemu_size = 64;
    o.dirty = 2;
    return o;
  };
  std::vector<std::pair<std::string, ScenarioOptions>> shapes;
  {
    auto o = small();
    shapes.emplace_back("hvm-64.bin", o);
    o.xl_header = true;
    o.toolstack = true;
    shapes.emplace_back("hvm-64-xl-toolstack.bin", o);
  }
  {
    auto o = small();
    o.width = 4;
    o.qemu = testing::QemuSig::kXend;
    shapes.emplace_back("hvm-32-xend.bin", o);
  }
  {
    auto o = small();
    o.guest = GuestType::kPv;
    o.xtab_padding = true;
    o.xsave_size = 64;
    shapes.emplace_back("pv-64-xtab.bin", o);
    o.width = 4;
    o.guest_width = 4;
    o.xtab_padding = false;
    shapes.emplace_back("pv-32.bin", o);
  }
  {
    auto o = small();
    o.checkpoints = 3;
    o.compress = true;
    o.qemu = testing::QemuSig::kRemus;
    shapes.emplace_back("hvm-remus-compressed.bin", o);
    o.guest = GuestType::kPv;
    o.split_encodings = true;
    o.compressed_chunk = 300;
    shapes.emplace_back("pv-remus-split.bin", o);
  }
  for (const auto& [name, o] : shapes) {
    const auto s = testing::build_scenario(o);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(s.bytes.data()),
              static_cast<std::streamsize>(s.bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_convert_seeds: cannot write %s\n", (dir / name).c_str());
      return 2;
    }
  }
  return 0;
}
