#include <xenstream/codecs/open_input.h>

#include <xenstream/codecs/zstd/zstd_source.h>

namespace xenstream::codecs {

Expected<OpenedInput> wrap_input(std::unique_ptr<Source> plain) {
  auto head = plain->peek(4);
  if (!head) return std::move(head).error();
  OpenedInput out;
  if (ZstdSource::sniff(*head)) {
    plain->set_read_ahead(true);
    out.source = std::make_unique<ZstdSource>(std::move(plain));
    out.compressed = true;
  } else {
    out.source = std::move(plain);
  }
  return out;
}

Expected<OpenedInput> open_input(const std::string& path, bool read_ahead) {
  auto plain = open_plain_source(path);
  if (!plain) return std::move(plain).error();
  (*plain)->set_read_ahead(read_ahead);
  return wrap_input(std::move(plain).value());
}

}  // namespace xenstream::codecs
