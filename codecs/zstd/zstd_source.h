// A Source that decompresses a zstd stream read from another Source.
//
// Decoding runs as the reader pulls: the window holds decompressed bytes and
// grows only to the largest single pull (the inner source stays bounded
// too). position() counts decompressed bytes, which is what every message
// about the stream's contents refers to; compressed_position() gives the
// offset in the compressed input, for I/O messages.
#pragma once

#include <memory>
#include <vector>

#include <xenstream/libstream/source.h>

struct ZSTD_DCtx_s;

namespace xenstream::codecs {

class ZstdSource : public Source {
 public:
  static constexpr std::size_t kDefaultMaxWindow = (128u << 20) + 64;

  // Owns `inner`.
  explicit ZstdSource(std::unique_ptr<Source> inner, std::size_t max_window = kDefaultMaxWindow);
  ~ZstdSource() override;
  ZstdSource(const ZstdSource&) = delete;
  ZstdSource& operator=(const ZstdSource&) = delete;

  std::string name() const override { return inner_->name() + " (zstd)"; }
  std::uint64_t compressed_position() const { return inner_->position(); }
  std::size_t peak_window() const { return buf_.size(); }

  // True when the first octets are the zstd frame magic.
  static bool sniff(Bytes head);

 protected:
  Expected<Bytes> fill(std::size_t min) override;
  void advance(std::size_t n) override { begin_ += n; }

 private:
  std::unique_ptr<Source> inner_;
  ZSTD_DCtx_s* dctx_;
  std::size_t max_window_;
  std::vector<std::byte> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  bool eof_ = false;
  bool frame_open_ = false;  // inside a frame that has not ended yet
};

}  // namespace xenstream::codecs
