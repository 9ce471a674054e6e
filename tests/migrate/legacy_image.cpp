// legacy_image OUT [--no-last-checkpoint] [--checkpoints N] [--pv]: writes a
// legacy (pre-4.6) image behind an xl header without the STREAMv2 flag, as an
// xl of Xen 4.5 sent it, made by the tests' own legacy writer
// (tests/convert/legacy_builder), for xl_sender.py.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tests/convert/legacy_builder.h"

int main(int argc, char** argv) {
  namespace ct = xenstream::convert::testing;
  if (argc < 2) {
    std::fprintf(stderr, "usage: legacy_image OUT [--no-last-checkpoint] [--checkpoints N] [--pv]\n");
    return 2;
  }
  ct::ScenarioOptions so;
  so.pages = 40;
  so.xl_header = true;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-last-checkpoint") {
      so.last_checkpoint = false;
    } else if (a == "--checkpoints" && i + 1 < argc) {
      so.checkpoints = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
    } else if (a == "--pv") {
      so.guest = xenstream::convert::GuestType::kPv;
      so.xl_config = "{\"c_info\": {\"type\": \"pv\", \"name\": \"guest\"}}";
    } else {
      std::fprintf(stderr, "legacy_image: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  const ct::Scenario sc = ct::build_scenario(so);
  std::FILE* f = std::fopen(argv[1], "wb");
  if (f == nullptr) return 2;
  const bool ok = std::fwrite(sc.bytes.data(), 1, sc.bytes.size(), f) == sc.bytes.size();
  return std::fclose(f) == 0 && ok ? 0 : 2;
}
