// Byte-order vocabulary for on-disk layouts. Layout structs are built from
// Boost.Endian buffer types: alignment 1, explicit byte order, no casts of
// raw buffers to native structs.
#pragma once

#include <boost/endian/buffers.hpp>
#include <cstdint>

namespace xenstream::format {

using boost::endian::order;

template <order O> using u8_buf = boost::endian::endian_buffer<O, std::uint8_t, 8>;
template <order O> using u16_buf = boost::endian::endian_buffer<O, std::uint16_t, 16>;
template <order O> using u32_buf = boost::endian::endian_buffer<O, std::uint32_t, 32>;
template <order O> using u64_buf = boost::endian::endian_buffer<O, std::uint64_t, 64>;

// The byte order a stream declares, chosen once when its header is parsed.
enum class ByteOrder : std::uint8_t { kLittle, kBig };

}  // namespace xenstream::format
