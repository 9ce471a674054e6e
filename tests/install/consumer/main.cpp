// list-records: prints every record of a Xen save image or migration stream
// (xl/libvirt header, libxl and libxc layers, zstd-compressed or not).
#include <xenstream/xenstream.h>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: list-records IMAGE (or - for stdin)\n");
    return 2;
  }
  auto input = xenstream::codecs::open_input(argv[1]);  // file, pipe or zstd
  if (!input) {
    std::fprintf(stderr, "%s\n", input.error().describe().c_str());
    return 2;
  }
  xenstream::Source& src = *input->source;
  auto container = xenstream::read_container(src);  // which header, where the payload starts
  if (!container) {
    std::fprintf(stderr, "%s\n", container.error().describe().c_str());
    return 1;
  }
  xenstream::StreamCursor records(src, container->payload);
  if (auto ok = records.start(); !ok) {
    std::fprintf(stderr, "%s\n", ok.error().describe().c_str());
    return 1;
  }
  while (!records.done()) {
    auto rec = records.next();  // a view: valid until the next call
    if (!rec) {
      std::fprintf(stderr, "%s\n", rec.error().describe().c_str());
      return 1;
    }
    std::printf("0x%08llx %s %-24s %u octets\n", static_cast<unsigned long long>(rec->offset),
                std::string(xenstream::layer_name(rec->layer)).c_str(),
                xenstream::record_display_name(rec->layer, rec->type).c_str(), rec->length);
  }
  return 0;
}
