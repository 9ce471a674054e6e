#include <xenstream/libstream/record_writer.h>

#include <array>

namespace xenstream {

namespace xc = format::libxc;
namespace xl = format::libxl;

namespace {
constexpr std::array<std::byte, 8> kZeros{};

Bytes as_bytes(const std::vector<std::byte>& v) { return Bytes(v.data(), v.size()); }
}  // namespace

Expected<void> RecordWriter::write_libxl_header(std::uint32_t options, std::uint32_t version) {
  if (order_ == ByteOrder::kBig) options |= xl::kOptionBigEndian;
  std::array<std::byte, 16> h{};
  put_u64(h.data(), xl::kIdent, ByteOrder::kBig);
  put_u32(h.data() + 8, version, ByteOrder::kBig);
  put_u32(h.data() + 12, options, ByteOrder::kBig);
  return sink_.write(Bytes(h));
}

Expected<void> RecordWriter::write_image_header(std::uint32_t version, std::uint16_t options) {
  if (order_ == ByteOrder::kBig) options |= xc::kOptionBigEndian;
  std::array<std::byte, 24> h{};
  put_u64(h.data(), xc::kImageMarker, ByteOrder::kBig);
  put_u32(h.data() + 8, xc::kImageId, ByteOrder::kBig);
  put_u32(h.data() + 12, version, ByteOrder::kBig);
  put_u16(h.data() + 16, options, ByteOrder::kBig);
  return sink_.write(Bytes(h));
}

Expected<void> RecordWriter::write_domain_header(std::uint32_t type, std::uint32_t xen_major,
                                                 std::uint32_t xen_minor, std::uint16_t page_shift,
                                                 std::uint16_t reserved) {
  std::array<std::byte, 16> h{};
  put_u32(h.data(), type, order_);
  put_u16(h.data() + 4, page_shift, order_);
  put_u16(h.data() + 6, reserved, order_);
  put_u32(h.data() + 8, xen_major, order_);
  put_u32(h.data() + 12, xen_minor, order_);
  return sink_.write(Bytes(h));
}

Expected<void> RecordWriter::append(std::uint32_t type, std::span<const Bytes> parts) {
  std::uint64_t length = 0;
  for (const Bytes& p : parts) length += p.size();
  if (length > max_record_length) {
    return make_error(ErrorCode::kLimit, sink_.position(),
                      "record body of " + hex(length) + " bytes exceeds the cap of " +
                          hex(max_record_length));
  }
  std::array<std::byte, 8> head{};
  put_u32(head.data(), type, order_);
  put_u32(head.data() + 4, static_cast<std::uint32_t>(length), order_);
  const auto pad = static_cast<std::size_t>((8 - length % 8) % 8);
  std::vector<Bytes> all;
  all.reserve(parts.size() + 2);
  all.emplace_back(head);
  all.insert(all.end(), parts.begin(), parts.end());
  all.emplace_back(kZeros.data(), pad);
  return sink_.write(std::span<const Bytes>(all));
}

Expected<void> RecordWriter::append_page_data(std::span<const std::uint64_t> entries,
                                              std::span<const Bytes> pages) {
  XS_TRY(page_data_head(entries, pages.size()));
  parts_.clear();
  parts_.push_back(as_bytes(scratch_));
  for (const Bytes& p : pages) {
    if (p.size() != xc::kPageSize) {
      return make_error(ErrorCode::kUsage, sink_.position(),
                        "PAGE_DATA: a page of " + std::to_string(p.size()) + " bytes, expected 4096");
    }
    parts_.push_back(p);
  }
  return sink_.write(std::span<const Bytes>(parts_));  // head and pages in one vectored write
}

Expected<void> RecordWriter::begin_page_data(std::span<const std::uint64_t> entries, std::uint64_t data_pages) {
  XS_TRY(page_data_head(entries, data_pages));
  return sink_.write(as_bytes(scratch_));
}

Expected<void> RecordWriter::page_data_head(std::span<const std::uint64_t> entries, std::uint64_t data_pages) {
  std::uint64_t data = 0;
  for (std::uint64_t e : entries) data += xc::page_type_has_data(static_cast<unsigned>(e >> 60));
  if (data != data_pages) {
    return make_error(ErrorCode::kUsage, sink_.position(),
                      "PAGE_DATA: " + std::to_string(data) + " entries carry data but " +
                          std::to_string(data_pages) + " pages were given");
  }
  const std::uint64_t length = 8 + 8 * std::uint64_t{entries.size()} + xc::kPageSize * data_pages;
  if (length > max_record_length) {
    return make_error(ErrorCode::kLimit, sink_.position(),
                      "record body of " + hex(length) + " bytes exceeds the cap of " +
                          hex(max_record_length));
  }
  // A body of entries and whole pages needs no padding.
  scratch_.assign(16 + 8 * entries.size(), std::byte{0});
  put_u32(scratch_.data(), static_cast<std::uint32_t>(xc::RecordType::kPageData), order_);
  put_u32(scratch_.data() + 4, static_cast<std::uint32_t>(length), order_);
  put_u32(scratch_.data() + 8, static_cast<std::uint32_t>(entries.size()), order_);
  for (std::size_t i = 0; i < entries.size(); ++i) put_u64(scratch_.data() + 16 + 8 * i, entries[i], order_);
  return {};
}

Expected<void> RecordWriter::append_file_pages(std::span<const std::uint64_t> entries,
                                               std::span<const FilePages> pages) {
  std::uint64_t given = 0;
  for (const FilePages& p : pages) given += p.count;
  XS_TRY(begin_page_data(entries, given));
  static const std::vector<std::byte> zero_page(xc::kPageSize);
  for (const FilePages& p : pages) {
    if (p.fd >= 0) {
      XS_TRY(sink_.write_file_range(p.fd, p.offset, xc::kPageSize * std::uint64_t{p.count}));
      continue;
    }
    parts_.assign(p.count, as_bytes(zero_page));
    XS_TRY(sink_.write(std::span<const Bytes>(parts_)));
  }
  return {};
}

Expected<void> RecordWriter::append_x86_pv_info(std::uint8_t guest_width, std::uint8_t pt_levels) {
  std::array<std::byte, 8> b{};
  b[0] = std::byte{guest_width};
  b[1] = std::byte{pt_levels};
  return append(xc::RecordType::kX86PvInfo, {Bytes(b)});
}

Expected<void> RecordWriter::append_p2m_frames(std::uint32_t start_pfn, std::uint32_t end_pfn,
                                               std::span<const std::uint64_t> frames) {
  scratch_.assign(8 + 8 * frames.size(), std::byte{0});
  put_u32(scratch_.data(), start_pfn, order_);
  put_u32(scratch_.data() + 4, end_pfn, order_);
  for (std::size_t i = 0; i < frames.size(); ++i) put_u64(scratch_.data() + 8 + 8 * i, frames[i], order_);
  return append(xc::RecordType::kX86PvP2mFrames, {as_bytes(scratch_)});
}

Expected<void> RecordWriter::append_vcpu(xc::RecordType type, std::uint32_t vcpu_id, Bytes blob) {
  std::array<std::byte, 8> h{};
  put_u32(h.data(), vcpu_id, order_);
  return append(type, {Bytes(h), blob});
}

Expected<void> RecordWriter::append_tsc_info(std::uint32_t mode, std::uint32_t khz,
                                             std::uint64_t nsec, std::uint32_t incarnation) {
  std::array<std::byte, 24> b{};
  put_u32(b.data(), mode, order_);
  put_u32(b.data() + 4, khz, order_);
  put_u64(b.data() + 8, nsec, order_);
  put_u32(b.data() + 16, incarnation, order_);
  return append(xc::RecordType::kX86TscInfo, {Bytes(b)});
}

Expected<void> RecordWriter::append_hvm_params(
    std::span<const std::pair<std::uint64_t, std::uint64_t>> params) {
  scratch_.assign(8 + 16 * params.size(), std::byte{0});
  put_u32(scratch_.data(), static_cast<std::uint32_t>(params.size()), order_);
  for (std::size_t i = 0; i < params.size(); ++i) {
    put_u64(scratch_.data() + 8 + 16 * i, params[i].first, order_);
    put_u64(scratch_.data() + 16 + 16 * i, params[i].second, order_);
  }
  return append(xc::RecordType::kHvmParams, {as_bytes(scratch_)});
}

Expected<void> RecordWriter::append_emulator(xl::RecordType type, std::uint32_t id,
                                             std::uint32_t index, std::span<const Bytes> data) {
  std::array<std::byte, 8> h{};
  put_u32(h.data(), id, order_);
  put_u32(h.data() + 4, index, order_);
  std::vector<Bytes> parts;
  parts.reserve(data.size() + 1);
  parts.emplace_back(h);
  parts.insert(parts.end(), data.begin(), data.end());
  return append(static_cast<std::uint32_t>(type), std::span<const Bytes>(parts));
}

Expected<void> RecordWriter::append_xenstore(
    std::uint32_t id, std::uint32_t index,
    std::span<const std::pair<std::string, std::string>> pairs) {
  std::vector<std::byte> data;
  for (const auto& [k, v] : pairs) {
    for (const std::string* s : {&k, &v}) {
      const auto* p = reinterpret_cast<const std::byte*>(s->data());
      data.insert(data.end(), p, p + s->size());
      data.push_back(std::byte{0});
    }
  }
  const Bytes one = as_bytes(data);
  return append_emulator(xl::RecordType::kEmulatorXenstoreData, id, index,
                         std::span<const Bytes>(&one, 1));
}

Expected<void> RecordWriter::append_checkpoint_state(std::uint32_t control_id) {
  std::array<std::byte, 4> b{};
  put_u32(b.data(), control_id, order_);
  return append(xl::RecordType::kCheckpointState, {Bytes(b)});
}

Expected<std::uint64_t> RecordWriter::finish() {
  XS_TRY(append(0u, {}));
  XS_TRY(sink_.flush());
  return sink_.position();
}

}  // namespace xenstream
