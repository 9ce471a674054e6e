#include <xenstream/codecs/zstd/zstd_source.h>

#include <zstd.h>

#include <algorithm>
#include <cstring>

#include <xenstream/libstream/format/containers.h>

namespace xenstream::codecs {

ZstdSource::ZstdSource(std::unique_ptr<Source> inner, std::size_t max_window)
    : WindowSource(max_window, ZSTD_DStreamOutSize() * 8),
      inner_(std::move(inner)),
      dctx_(ZSTD_createDCtx()) {}

ZstdSource::~ZstdSource() { ZSTD_freeDCtx(dctx_); }

bool ZstdSource::sniff(Bytes head) {
  return head.size() >= 4 && std::memcmp(head.data(), format::kZstdMagic, 4) == 0;
}

Expected<std::size_t> ZstdSource::read_some(std::byte* dst, std::size_t max) {
  for (;;) {
    auto in = inner_->peek(ZSTD_DStreamInSize());
    if (!in) return std::move(in).error();
    if (in->empty()) {
      if (frame_open_) {
        return make_error(ErrorCode::kTruncated, inner_->position(),
                          "zstd: the compressed input ends inside a frame (at compressed offset " +
                              hex(inner_->position()) + ")");
      }
      return std::size_t{0};
    }
    ZSTD_inBuffer ib{in->data(), in->size(), 0};
    ZSTD_outBuffer ob{dst, max, 0};
    const std::size_t ret = ZSTD_decompressStream(dctx_, &ob, &ib);
    if (ZSTD_isError(ret)) {
      return make_error(ErrorCode::kMalformed, inner_->position() + ib.pos,
                        std::string("zstd: ") + ZSTD_getErrorName(ret) + " (at compressed offset " +
                            hex(inner_->position() + ib.pos) + ")");
    }
    frame_open_ = ret != 0;
    inner_->consume(ib.pos);
    if (ob.pos > 0) return ob.pos;
    if (ib.pos == 0) {
      // With room to write and input to read, zstd always makes progress.
      return make_error(ErrorCode::kMalformed, inner_->position(),
                        "zstd: no progress at compressed offset " + hex(inner_->position()));
    }
  }
}

}  // namespace xenstream::codecs
