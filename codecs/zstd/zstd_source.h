// A Source that decompresses a zstd stream read from another Source.
//
// Decoding runs as the reader pulls: the window (libstream's WindowSource,
// the one FdSource uses) holds decompressed bytes and grows only to the
// largest single pull (the inner source stays bounded too). transfer() and
// skip() copy through the window: decompressed octets exist only there. position() counts decompressed bytes, which is what every message
// about the stream's contents refers to; compressed_position() gives the
// offset in the compressed input, for I/O messages.
#pragma once

#include <memory>

#include <xenstream/libstream/source.h>

struct ZSTD_DCtx_s;

namespace xenstream::codecs {

class ZstdSource : public WindowSource {
 public:
  static constexpr std::size_t kDefaultMaxWindow = (128u << 20) + 64;

  // Owns `inner`.
  explicit ZstdSource(std::unique_ptr<Source> inner, std::size_t max_window = kDefaultMaxWindow);
  ~ZstdSource() override;
  ZstdSource(const ZstdSource&) = delete;
  ZstdSource& operator=(const ZstdSource&) = delete;

  std::string name() const override { return inner_->name() + " (zstd)"; }
  std::uint64_t compressed_position() const { return inner_->position(); }

  // True when the first octets are the zstd frame magic.
  static bool sniff(Bytes head);

 protected:
  Expected<std::size_t> read_some(std::byte* dst, std::size_t max) override;

 private:
  std::unique_ptr<Source> inner_;
  ZSTD_DCtx_s* dctx_;
  bool frame_open_ = false;  // inside a frame that has not ended yet
};

}  // namespace xenstream::codecs
