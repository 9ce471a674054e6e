// A Sink that compresses into another Sink (one zstd frame per stream).
// flush() ends the frame, so call it exactly once, at the end; the writer's
// finish() does.
#pragma once

#include <memory>
#include <vector>

#include <xenstream/libstream/sink.h>

struct ZSTD_CCtx_s;

namespace xenstream::codecs {

class ZstdSink : public Sink {
 public:
  // Borrows `inner`.
  explicit ZstdSink(Sink& inner, int level = 3);
  ~ZstdSink() override;
  ZstdSink(const ZstdSink&) = delete;
  ZstdSink& operator=(const ZstdSink&) = delete;

  Expected<void> flush() override;

 protected:
  Expected<void> do_write(std::span<const Bytes> parts, std::size_t total) override;

 private:
  Sink& inner_;
  ZSTD_CCtx_s* cctx_;
  std::vector<std::byte> out_;
  bool ended_ = false;
};

}  // namespace xenstream::codecs
