// Bounds-checked field access into a view, in a byte order chosen once.
//
// A Fields value pairs a byte view with the byte order of the stream it came
// from and the absolute offset of its first byte, so that every decoded field
// can be reported at its place in the input. Accessors are bounds-checked:
// reading past the view is a programming error caught by an assertion; the
// decoders check lengths first and return errors instead.
#pragma once

#include <boost/endian/conversion.hpp>
#include <cassert>
#include <cstdint>
#include <cstring>

#include <xenstream/libstream/format/endian.h>
#include <xenstream/libstream/source.h>

namespace xenstream {

using format::ByteOrder;

class Fields {
 public:
  Fields() = default;
  Fields(Bytes bytes, ByteOrder order, std::uint64_t base_offset)
      : bytes_(bytes), order_(order), base_(base_offset) {}

  std::size_t size() const { return bytes_.size(); }
  Bytes bytes() const { return bytes_; }
  ByteOrder order() const { return order_; }
  std::uint64_t offset_of(std::size_t off) const { return base_ + off; }
  bool fits(std::size_t off, std::size_t len) const {
    return off <= bytes_.size() && len <= bytes_.size() - off;
  }

  std::uint8_t u8(std::size_t off) const {
    assert(fits(off, 1));
    return static_cast<std::uint8_t>(bytes_[off]);
  }
  std::uint16_t u16(std::size_t off) const {
    assert(fits(off, 2));
    const auto* p = ptr(off);
    return order_ == ByteOrder::kLittle ? boost::endian::load_little_u16(p)
                                        : boost::endian::load_big_u16(p);
  }
  std::uint32_t u32(std::size_t off) const {
    assert(fits(off, 4));
    const auto* p = ptr(off);
    return order_ == ByteOrder::kLittle ? boost::endian::load_little_u32(p)
                                        : boost::endian::load_big_u32(p);
  }
  std::uint64_t u64(std::size_t off) const {
    assert(fits(off, 8));
    const auto* p = ptr(off);
    return order_ == ByteOrder::kLittle ? boost::endian::load_little_u64(p)
                                        : boost::endian::load_big_u64(p);
  }
  Fields sub(std::size_t off, std::size_t len) const {
    assert(fits(off, len));
    return Fields(bytes_.subspan(off, len), order_, base_ + off);
  }
  Fields tail(std::size_t off) const {
    assert(off <= bytes_.size());
    return Fields(bytes_.subspan(off), order_, base_ + off);
  }

 private:
  const unsigned char* ptr(std::size_t off) const {
    return reinterpret_cast<const unsigned char*>(bytes_.data() + off);
  }
  Bytes bytes_;
  ByteOrder order_ = ByteOrder::kLittle;
  std::uint64_t base_ = 0;
};

// Encoders used by writers: append integers in a byte order.
inline void put_u16(std::byte* p, std::uint16_t v, ByteOrder o) {
  auto* q = reinterpret_cast<unsigned char*>(p);
  o == ByteOrder::kLittle ? boost::endian::store_little_u16(q, v) : boost::endian::store_big_u16(q, v);
}
inline void put_u32(std::byte* p, std::uint32_t v, ByteOrder o) {
  auto* q = reinterpret_cast<unsigned char*>(p);
  o == ByteOrder::kLittle ? boost::endian::store_little_u32(q, v) : boost::endian::store_big_u32(q, v);
}
inline void put_u64(std::byte* p, std::uint64_t v, ByteOrder o) {
  auto* q = reinterpret_cast<unsigned char*>(p);
  o == ByteOrder::kLittle ? boost::endian::store_little_u64(q, v) : boost::endian::store_big_u64(q, v);
}

}  // namespace xenstream
