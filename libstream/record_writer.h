// Writes stream headers and records (spec/libxc.md, spec/libxl.md).
//
// Mirrors the reader: append(type, parts...) frames a body made of several
// caller buffers, pads it with zeros to a multiple of 8 and hands everything
// to the sink as one vectored write, so page contents go from the caller's
// buffers to the sink without a copy. finish() writes END, flushes, and
// reports the final size. The writer never writes from its destructor.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/libxc.h>
#include <xenstream/libstream/format/libxl.h>
#include <xenstream/libstream/sink.h>

namespace xenstream {

class RecordWriter {
 public:
  explicit RecordWriter(Sink& sink, ByteOrder order = ByteOrder::kLittle)
      : sink_(sink), order_(order) {}

  ByteOrder order() const { return order_; }
  std::uint64_t position() const { return sink_.position(); }

  // Headers. The byte-order option bit is set from order() unless `options`
  // already says otherwise.
  Expected<void> write_libxl_header(std::uint32_t options = 0, std::uint32_t version = 2);
  Expected<void> write_image_header(std::uint32_t version = 3, std::uint16_t options = 0);
  Expected<void> write_domain_header(std::uint32_t type, std::uint32_t xen_major,
                                     std::uint32_t xen_minor, std::uint16_t page_shift = 12,
                                     std::uint16_t reserved = 0);

  // Writes one record whose body is the concatenation of `parts`.
  //   kLimit: the body would exceed max_record_length (nothing written)
  Expected<void> append(std::uint32_t type, std::span<const Bytes> parts);
  Expected<void> append(std::uint32_t type, std::initializer_list<Bytes> parts = {}) {
    return append(type, std::span<const Bytes>(parts.begin(), parts.size()));
  }
  Expected<void> append(format::libxc::RecordType type, std::initializer_list<Bytes> parts = {}) {
    return append(static_cast<std::uint32_t>(type), parts);
  }
  Expected<void> append(format::libxl::RecordType type, std::initializer_list<Bytes> parts = {}) {
    return append(static_cast<std::uint32_t>(type), parts);
  }

  // PAGE_DATA: `entries` are encoded (type nibble << 60 | pfn); `pages` holds
  // one 4096-octet span per data-carrying entry, in entry order.
  //   kUsage: the number of pages does not match the entries' types
  Expected<void> append_page_data(std::span<const std::uint64_t> entries,
                                  std::span<const Bytes> pages);
  // PAGE_DATA whose pages the caller writes to sink() itself, right after
  // this call (Sink::write_from, write_file_range): writes the record
  // header and the entries for a body with `data_pages` pages.
  //   kUsage: data_pages does not match the entries' types
  Expected<void> begin_page_data(std::span<const std::uint64_t> entries, std::uint64_t data_pages);
  Sink& sink() { return sink_; }
  // PAGE_DATA whose pages are read from a file, in stretches: `count`
  // consecutive pages of the file `fd` from `offset`, or `count` zero pages
  // where fd < 0. The pages go through Sink::write_file_range(), so a pipe
  // or file sink takes them inside the kernel.
  struct FilePages {
    int fd = -1;
    std::uint64_t offset = 0;
    std::uint32_t count = 0;
  };
  Expected<void> append_file_pages(std::span<const std::uint64_t> entries,
                                   std::span<const FilePages> pages);
  Expected<void> append_x86_pv_info(std::uint8_t guest_width, std::uint8_t pt_levels);
  Expected<void> append_p2m_frames(std::uint32_t start_pfn, std::uint32_t end_pfn,
                                   std::span<const std::uint64_t> frames);
  // X86_PV_VCPU_{BASIC,EXTENDED,XSAVE,MSRS}.
  Expected<void> append_vcpu(format::libxc::RecordType type, std::uint32_t vcpu_id, Bytes blob);
  Expected<void> append_tsc_info(std::uint32_t mode, std::uint32_t khz, std::uint64_t nsec,
                                 std::uint32_t incarnation);
  Expected<void> append_hvm_params(std::span<const std::pair<std::uint64_t, std::uint64_t>> params);
  // EMULATOR_XENSTORE_DATA / EMULATOR_CONTEXT with their sub-header.
  Expected<void> append_emulator(format::libxl::RecordType type, std::uint32_t id,
                                 std::uint32_t index, std::span<const Bytes> data);
  Expected<void> append_xenstore(std::uint32_t id, std::uint32_t index,
                                 std::span<const std::pair<std::string, std::string>> pairs);
  Expected<void> append_checkpoint_state(std::uint32_t control_id);

  // Writes an END record (type 0 in either layer), flushes the sink and
  // returns the number of bytes written so far.
  Expected<std::uint64_t> finish();

  std::uint32_t max_record_length = format::libxc::kRecordLengthMax;

 private:
  // Checks a PAGE_DATA record of `entries` and `data_pages` pages (the count
  // against the entries' types, the length against the cap) and lays out
  // its header and entries in scratch_.
  Expected<void> page_data_head(std::span<const std::uint64_t> entries, std::uint64_t data_pages);

  Sink& sink_;
  ByteOrder order_;
  std::vector<std::byte> scratch_;
  std::vector<Bytes> parts_;
};

}  // namespace xenstream
