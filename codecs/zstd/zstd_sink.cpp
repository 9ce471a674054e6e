#include <xenstream/codecs/zstd/zstd_sink.h>

#include <zstd.h>

namespace xenstream::codecs {

ZstdSink::ZstdSink(Sink& inner, int level)
    : inner_(inner), cctx_(ZSTD_createCCtx()), out_(ZSTD_CStreamOutSize()) {
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1);
}

ZstdSink::~ZstdSink() { ZSTD_freeCCtx(cctx_); }

Expected<void> ZstdSink::do_write(std::span<const Bytes> parts, std::size_t) {
  if (ended_) return make_error(ErrorCode::kUsage, position(), "zstd: write after the frame ended");
  for (const Bytes& p : parts) {
    ZSTD_inBuffer ib{p.data(), p.size(), 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
      const std::size_t ret = ZSTD_compressStream2(cctx_, &ob, &ib, ZSTD_e_continue);
      if (ZSTD_isError(ret)) {
        return make_error(ErrorCode::kIo, position(), std::string("zstd: ") + ZSTD_getErrorName(ret));
      }
      if (ob.pos > 0) XS_TRY(inner_.write(Bytes(out_.data(), ob.pos)));
    }
  }
  return {};
}

Expected<void> ZstdSink::flush() {
  if (ended_) return inner_.flush();
  ZSTD_inBuffer ib{nullptr, 0, 0};
  std::size_t left = 0;
  do {
    ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
    left = ZSTD_compressStream2(cctx_, &ob, &ib, ZSTD_e_end);
    if (ZSTD_isError(left)) {
      return make_error(ErrorCode::kIo, position(), std::string("zstd: ") + ZSTD_getErrorName(left));
    }
    if (ob.pos > 0) XS_TRY(inner_.write(Bytes(out_.data(), ob.pos)));
  } while (left != 0);
  ended_ = true;
  return inner_.flush();
}

}  // namespace xenstream::codecs
