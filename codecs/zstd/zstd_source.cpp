#include <xenstream/codecs/zstd/zstd_source.h>

#include <zstd.h>

#include <algorithm>
#include <cstring>

#include <xenstream/libstream/format/containers.h>

namespace xenstream::codecs {

ZstdSource::ZstdSource(std::unique_ptr<Source> inner, std::size_t max_window)
    : inner_(std::move(inner)), dctx_(ZSTD_createDCtx()), max_window_(max_window) {}

ZstdSource::~ZstdSource() { ZSTD_freeDCtx(dctx_); }

bool ZstdSource::sniff(Bytes head) {
  return head.size() >= 4 && std::memcmp(head.data(), format::kZstdMagic, 4) == 0;
}

Expected<Bytes> ZstdSource::fill(std::size_t min) {
  if (end_ - begin_ >= min || eof_) return Bytes(buf_.data() + begin_, end_ - begin_);
  if (min > max_window_) {
    return make_error(ErrorCode::kLimit, position_,
                      "a single read of " + hex(min) + " bytes exceeds the window cap of " +
                          hex(max_window_) + " bytes");
  }
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  // The window grows toward the request only as decompressed bytes arrive
  // (doubling when full): a small frame that claims a huge record costs
  // memory in proportion to what it really decompresses to.
  const std::size_t chunk = ZSTD_DStreamOutSize() * 8;
  const std::size_t want = std::min(max_window_, std::max(min, chunk));
  while (end_ < min) {
    if (end_ == buf_.size()) {
      buf_.resize(std::min(want, std::max(2 * buf_.size(), chunk)));
    }
    auto in = inner_->peek(ZSTD_DStreamInSize());
    if (!in) return std::move(in).error();
    if (in->empty()) {
      if (frame_open_) {
        return make_error(ErrorCode::kTruncated, inner_->position(),
                          "zstd: the compressed input ends inside a frame (at compressed offset " +
                              hex(inner_->position()) + ")");
      }
      eof_ = true;
      break;
    }
    ZSTD_inBuffer ib{in->data(), in->size(), 0};
    ZSTD_outBuffer ob{buf_.data() + end_, buf_.size() - end_, 0};
    const std::size_t ret = ZSTD_decompressStream(dctx_, &ob, &ib);
    if (ZSTD_isError(ret)) {
      return make_error(ErrorCode::kMalformed, inner_->position() + ib.pos,
                        std::string("zstd: ") + ZSTD_getErrorName(ret) + " (at compressed offset " +
                            hex(inner_->position() + ib.pos) + ")");
    }
    frame_open_ = ret != 0;
    inner_->consume(ib.pos);
    end_ += ob.pos;
    if (ob.pos == 0 && ib.pos == 0) {
      // No progress possible: the output window is full.
      if (end_ == buf_.size()) break;
    }
  }
  return Bytes(buf_.data() + begin_, end_ - begin_);
}

}  // namespace xenstream::codecs
