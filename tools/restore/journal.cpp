#include "tools/restore/journal.h"

#include <cstring>

#include <xenstream/libstream/fields.h>

namespace xenstream::restore {

std::uint64_t fnv1a64(Bytes data, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (std::byte b : data) {
    h ^= static_cast<std::uint8_t>(b);
    h *= 0x100000001b3ull;
  }
  return h;
}

bool journal_name_ok(const std::string& name) {
  if (name.empty() || name.size() > 200 || name[0] == '.') return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::vector<std::byte> encode_journal(const Journal& j) {
  std::size_t size = 32 + 16 * j.pages.size() + 8;
  for (const auto& r : j.renames) size += 4 + r.from.size() + r.to.size();
  std::vector<std::byte> out(size);
  std::byte* p = out.data();
  std::memcpy(p, kJournalMagic, 8);
  put_u64(p + 8, j.checkpoint, ByteOrder::kLittle);
  put_u64(p + 16, j.memory_size, ByteOrder::kLittle);
  put_u32(p + 24, static_cast<std::uint32_t>(j.pages.size()), ByteOrder::kLittle);
  put_u32(p + 28, static_cast<std::uint32_t>(j.renames.size()), ByteOrder::kLittle);
  p += 32;
  for (const auto& e : j.pages) {
    put_u64(p, e.entry, ByteOrder::kLittle);
    put_u64(p + 8, e.slot, ByteOrder::kLittle);
    p += 16;
  }
  for (const auto& r : j.renames) {
    put_u16(p, static_cast<std::uint16_t>(r.from.size()), ByteOrder::kLittle);
    put_u16(p + 2, static_cast<std::uint16_t>(r.to.size()), ByteOrder::kLittle);
    p += 4;
    std::memcpy(p, r.from.data(), r.from.size());
    p += r.from.size();
    std::memcpy(p, r.to.data(), r.to.size());
    p += r.to.size();
  }
  const auto body = static_cast<std::size_t>(p - out.data());
  put_u64(p, fnv1a64(Bytes(out.data(), body)), ByteOrder::kLittle);
  return out;
}

Expected<Journal> decode_journal(Bytes data) {
  auto bad = [](std::uint64_t at, std::string what) {
    return make_error(ErrorCode::kMalformed, at, "commit journal: " + std::move(what));
  };
  if (data.size() < 40) {
    return bad(0, "file is " + std::to_string(data.size()) + " octets, expected at least 40");
  }
  if (std::memcmp(data.data(), kJournalMagic, 8) != 0) return bad(0, "wrong magic");
  const Fields f(data, ByteOrder::kLittle, 0);
  const std::size_t body = data.size() - 8;
  const std::uint64_t want = f.u64(body);
  const std::uint64_t got = fnv1a64(data.first(body));
  if (want != got) {
    return bad(body, "checksum is " + hex(want) + ", contents hash to " + hex(got));
  }
  Journal j;
  j.checkpoint = f.u64(8);
  j.memory_size = f.u64(16);
  const std::uint32_t pages = f.u32(24);
  const std::uint32_t renames = f.u32(28);
  std::size_t pos = 32;
  if (std::uint64_t{pages} * 16 > body - pos) {
    return bad(24, std::to_string(pages) + " page entries do not fit in the file");
  }
  j.pages.resize(pages);
  for (auto& e : j.pages) {
    e.entry = f.u64(pos);
    e.slot = f.u64(pos + 8);
    pos += 16;
  }
  if (renames > (body - pos) / 4) {
    return bad(28, std::to_string(renames) + " renames do not fit in the file");
  }
  j.renames.resize(renames);
  for (auto& r : j.renames) {
    if (body - pos < 4) return bad(pos, "rename header past the end");
    const std::size_t from_len = f.u16(pos);
    const std::size_t to_len = f.u16(pos + 2);
    pos += 4;
    if (from_len + to_len > body - pos) return bad(pos, "rename names past the end");
    r.from.assign(reinterpret_cast<const char*>(data.data() + pos), from_len);
    r.to.assign(reinterpret_cast<const char*>(data.data() + pos + from_len), to_len);
    if (!journal_name_ok(r.from) || !journal_name_ok(r.to)) {
      return bad(pos, "rename names a path outside the directory");
    }
    pos += from_len + to_len;
  }
  if (pos != body) {
    return bad(pos, std::to_string(body - pos) + " octets left after the last rename");
  }
  return j;
}

}  // namespace xenstream::restore
