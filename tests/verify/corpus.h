// The streamverify test corpus: valid and invalid streams built at test
// time with libstream's RecordWriter (and byte edits after writing). Each
// invalid stream breaks exactly one rule of spec/verify-rules.md.
//
// A stream is described as a list of Items (headers, records, raw octets)
// so that a case can take a valid base stream and change one thing: drop
// a record, insert one, edit a body, or patch octets after serialising.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_names.h>
#include <xenstream/libstream/source.h>

namespace xenstream::verify::testing {

using Buf = std::vector<std::byte>;

// Little helpers for building bodies.
void put8(Buf& b, std::uint8_t v);
void put16(Buf& b, std::uint16_t v);  // little-endian
void put32(Buf& b, std::uint32_t v);
void put64(Buf& b, std::uint64_t v);
void put_be16(Buf& b, std::uint16_t v);
void put_be32(Buf& b, std::uint32_t v);
void put_text(Buf& b, std::string_view s);
void set32(Buf& b, std::size_t at, std::uint32_t v);
void set64(Buf& b, std::size_t at, std::uint64_t v);

struct Item {
  enum class Kind { kLibxlHeader, kImageHeader, kDomainHeader, kRecord, kRaw };
  Kind kind = Kind::kRecord;
  Layer layer = Layer::kLibxc;
  std::uint32_t type = 0;  // record type
  Buf body;                // record body, or raw octets
  std::string tag;         // to find the item's offset after serialising
  // Header fields: libxl (version, options); image (version, options);
  // domain (type, page_shift, reserved, xen_major, xen_minor).
  std::uint32_t f1 = 0, f2 = 0, f3 = 0, f4 = 0, f5 = 0;
};

Item libxl_header(std::uint32_t version = 2, std::uint32_t options = 0);
Item image_header(std::uint32_t version = 3, std::uint16_t options = 0);
Item domain_header(std::uint32_t type, std::uint32_t xen_major = 4, std::uint32_t xen_minor = 17,
                   std::uint16_t page_shift = 12, std::uint16_t reserved = 0);
Item xc(std::uint32_t type, Buf body = {}, std::string tag = {});
Item xl(std::uint32_t type, Buf body = {}, std::string tag = {});
Item raw(Buf octets, std::string tag = {});

struct XlContainer {
  std::uint32_t mandatory_flags = 3;
  std::uint32_t optional_flags = 0;
  bool big_endian = false;
  std::optional<std::uint32_t> byteorder;  // override the mark
  std::string config;                      // JSON text; a NUL is appended when json_nul
  bool json_nul = true;
  std::optional<std::uint32_t> config_len;         // override
  std::optional<std::uint32_t> optional_data_len;  // override
  Buf extra;                                       // octets after the config
};

struct LibvirtContainer {
  std::uint32_t version = 2;
  std::string xml;  // a NUL is appended when xml_nul
  bool xml_nul = true;
  std::optional<std::uint32_t> xml_len;
  std::uint32_t unused0 = 0;
};

struct Stream {
  std::optional<XlContainer> xl_container;
  std::optional<LibvirtContainer> libvirt_container;
  std::vector<Item> items;

  // Serialises with RecordWriter; `offsets` receives each tagged item's
  // offset (record header / header start) and "payload" (first octet after
  // any container).
  Buf bytes(std::map<std::string, std::uint64_t>* offsets = nullptr) const;

  // Index of the n-th record of (layer, type); throws if absent.
  std::size_t find(Layer layer, std::uint32_t type, int nth = 0) const;
  Item& at(Layer layer, std::uint32_t type, int nth = 0) { return items[find(layer, type, nth)]; }
  void erase(Layer layer, std::uint32_t type, int nth = 0);
  // Inserts before the n-th record of (layer, type).
  void insert_before(Layer layer, std::uint32_t type, Item item, int nth = 0);
  void insert_after(Layer layer, std::uint32_t type, Item item, int nth = 0);
};

// Bodies.
Buf page_data(const std::vector<std::uint64_t>& entries);  // data pages filled in
Buf pv_info(std::uint8_t width, std::uint8_t levels);
Buf p2m_frames(std::uint32_t start, std::uint32_t end, const std::vector<std::uint64_t>& frames);
Buf vcpu(std::uint32_t id, Buf blob);
Buf vcpu_basic64(std::uint32_t id, std::uint64_t start_info_pfn, std::uint64_t cr3_pfn,
                 std::uint64_t gdt_ents = 0, std::uint64_t gdt_frame = 0);
Buf vcpu_basic32(std::uint32_t id, std::uint32_t start_info_pfn, std::uint32_t cr3_pfn);
Buf tsc_info(std::uint32_t mode = 0, std::uint32_t khz = 2400000, std::uint64_t nsec = 123456789,
             std::uint32_t incarnation = 1);
Buf hvm_params(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& params);
Buf cpuid_policy(const std::vector<std::pair<std::uint32_t, std::uint32_t>>& leaves);
Buf msr_policy(const std::vector<std::uint32_t>& indexes);
Buf emulator(std::uint32_t id, std::uint32_t index, const Buf& data);
Buf xenstore(const std::vector<std::pair<std::string, std::string>>& pairs);  // data only

// HVM context blob: a list of entries, serialised with END appended.
struct HvmEntry {
  std::uint16_t code;
  std::uint16_t instance;
  Buf body;
};
std::vector<HvmEntry> hvm_entries(unsigned vcpus = 2);
Buf hvm_blob(const std::vector<HvmEntry>& entries, bool with_end = true);

// QEMU device-state blob.
struct QemuTok {
  std::uint8_t type;  // 0x04 FULL etc.; raw bytes in `payload` for others
  std::uint32_t section_id = 0;
  std::string idstr;
  std::uint32_t instance = 0;
  std::uint32_t version = 1;
  Buf payload;
  bool footer = false;
};
std::vector<QemuTok> qemu_sections();
Buf qemu_blob(const std::vector<QemuTok>& toks, bool with_eof = true);

// Valid base streams.
Stream hvm_stream();   // libxl + libxc v3 HVM, plain
Stream pv_stream();    // libxl + libxc v3 PV (64-bit), plain
Stream pv32_stream();  // libxl + libxc v3 PV (32-bit), plain
Stream hvm_v2_bare();  // bare libxc v2 HVM
Stream remus_stream(int checkpoints = 2);  // libxl HVM, checkpointed
Stream colo_stream(int checkpoints = 2);   // same with CHECKPOINT_STATE(NEW)
std::string xl_json_config(const std::string& type = "hvm", int max_vcpus = 2);

struct Case {
  std::string name;
  Buf bytes;
  // The one rule the stream breaks (nullopt: valid and no problem at all).
  std::optional<std::string> rule;
  // Reference format for verify-stream-v2 (-f); "libvirt" means: strip the
  // libvirt header and use libxl.
  std::string ref_format;
  FormatHint hint = FormatHint::kAuto;  // --format for streamverify
  std::string mode = "auto";            // --mode for streamverify (restore: -r, --colo)
  std::map<std::string, std::uint64_t> offsets;
};

const std::vector<Case>& corpus();

}  // namespace xenstream::verify::testing
