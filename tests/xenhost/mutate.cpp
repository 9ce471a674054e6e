// mutate: one mutated copy of a real `xl save` PV image per rule of
// spec/verify-rules.md, for Xen to judge (tests/xenhost/README.md).
//
//   mutate --list              the case names, one a line
//   mutate IMAGE CASE OUT      write case CASE of IMAGE to OUT
//
// Plain byte work with its own small walker (not libstream's reader: the
// judge should not share the code it judges). The image is split into the xl
// header, its optional data, the libxl header, libxl records up to and with
// LIBXC_CONTEXT, the libxc image and domain headers, the libxc records up to
// and with END, the libxl records after it and whatever trails. Each case
// edits that list and writes it back out. Exit 0 done, 1 the image is not an
// xl PV image this walker reads, 2 usage or I/O error.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using Bytes = std::vector<uint8_t>;

// A record body: a view into the mapped image until a case changes it, then
// a copy of its own. Only the records a case edits are ever copied, so a
// case costs a read of the image and not two copies of it (seconds each
// under TCG in dom0).
class Body {
public:
    Body() = default;
    Body(const uint8_t* p, size_t n) : view_(p), n_(n) {}
    size_t size() const { return owned_ ? own_.size() : n_; }
    const uint8_t* data() const { return owned_ ? own_.data() : view_; }
    uint8_t* data() { return mine().data(); }
    uint8_t& operator[](size_t i) { return mine().at(i); }
    void resize(size_t n) { mine().resize(n); }
    void assign(size_t n, uint8_t v) {
        own_.assign(n, v);
        owned_ = true;
    }

private:
    Bytes& mine() {
        if (!owned_) {
            own_.assign(view_, view_ + n_);
            owned_ = true;
        }
        return own_;
    }
    const uint8_t* view_ = nullptr;
    size_t n_ = 0;
    Bytes own_;
    bool owned_ = false;
};

struct Rec {
    uint32_t type = 0;
    Body body;
    std::optional<uint32_t> length;  // written instead of body.size()
    uint8_t pad_fill = 0;            // value of the padding octets
};

struct Image {
    Bytes xl_header;  // 48 octets: magic, byteorder, flags, optional_data_len
    Bytes optional;   // config_len + config (+ whatever)
    Bytes libxl_header;
    std::vector<Rec> libxl_pre;  // up to and with LIBXC_CONTEXT
    Bytes ihdr;                  // 24 octets, big-endian
    Bytes dhdr;                  // 16 octets
    std::vector<Rec> libxc;      // up to and with END
    std::vector<Rec> libxl_post; // up to and with END
    Bytes trailer;
};

// libxc record types
constexpr uint32_t kEnd = 0, kPageData = 1, kPvInfo = 2, kP2mFrames = 3, kVcpuBasic = 4,
                   kSharedInfo = 7, kTscInfo = 8, kHvmParams = 0xa, kToolstack = 0xb,
                   kDirtyPfnList = 0xf, kStaticDataEnd = 0x10;
// libxl record types
constexpr uint32_t kLibxlEnd = 0, kLibxcContext = 1, kEmulatorContext = 3;

uint32_t le32(const uint8_t* p) {
    return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
void put_le32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint64_t le64(const uint8_t* p) { return uint64_t(le32(p)) | uint64_t(le32(p + 4)) << 32; }
void put_le64(uint8_t* p, uint64_t v) {
    put_le32(p, uint32_t(v));
    put_le32(p + 4, uint32_t(v >> 32));
}
void put_be32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (24 - 8 * i));
}
uint32_t be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

struct Bad {
    std::string what;
};

struct Cursor {
    const uint8_t* in;
    size_t size;
    size_t at = 0;
    const uint8_t* skip(size_t n) {
        if (n > size - at) throw Bad{"truncated at 0x" + hex(at)};
        const uint8_t* p = in + at;
        at += n;
        return p;
    }
    Bytes take(size_t n) {
        const uint8_t* p = skip(n);
        return Bytes(p, p + n);
    }
    Rec record() {
        const uint8_t* h = skip(8);
        Rec r;
        r.type = le32(h);
        uint32_t len = le32(h + 4);
        if (len > 0x08000000) throw Bad{"record too long at 0x" + hex(at - 8)};
        r.body = Body(skip(len), len);
        skip((8 - len % 8) % 8);
        return r;
    }
    static std::string hex(size_t v) {
        char b[32];
        std::snprintf(b, sizeof b, "%zx", v);
        return b;
    }
};

Image parse(const uint8_t* in, size_t size) {
    Cursor c{in, size};
    Image img;
    img.xl_header = c.take(48);
    if (std::memcmp(img.xl_header.data(), "Xen saved domain, xl format\n \0 \r", 32) != 0)
        throw Bad{"not an xl save image"};
    img.optional = c.take(le32(img.xl_header.data() + 44));
    img.libxl_header = c.take(16);
    do {
        img.libxl_pre.push_back(c.record());
    } while (img.libxl_pre.back().type != kLibxcContext);
    img.ihdr = c.take(24);
    img.dhdr = c.take(16);
    if (le32(img.dhdr.data()) != 1) throw Bad{"not a PV stream"};
    do {
        img.libxc.push_back(c.record());
    } while (img.libxc.back().type != kEnd);
    do {
        img.libxl_post.push_back(c.record());
    } while (img.libxl_post.back().type != kLibxlEnd);
    img.trailer = c.take(size - c.at);
    return img;
}

// Written piece by piece, straight from the parsed records: no second copy
// of the image (dom0 has little memory to spare, and under TCG every copy of
// 128 MiB costs seconds).
void serialise(const Image& img, std::ostream& o) {
    auto add = [&](const uint8_t* p, size_t n) { o.write(reinterpret_cast<const char*>(p), long(n)); };
    auto bytes = [&](const Bytes& b) { add(b.data(), b.size()); };
    auto emit = [&](const Rec& r) {
        uint8_t h[8];
        put_le32(h, r.type);
        put_le32(h + 4, r.length.value_or(uint32_t(r.body.size())));
        add(h, sizeof h);
        add(r.body.data(), r.body.size());
        const uint8_t pad[8] = {r.pad_fill, r.pad_fill, r.pad_fill, r.pad_fill,
                                r.pad_fill, r.pad_fill, r.pad_fill, r.pad_fill};
        add(pad, (8 - r.body.size() % 8) % 8);
    };
    bytes(img.xl_header);
    bytes(img.optional);
    bytes(img.libxl_header);
    for (const auto& r : img.libxl_pre) emit(r);
    bytes(img.ihdr);
    bytes(img.dhdr);
    for (const auto& r : img.libxc) emit(r);
    for (const auto& r : img.libxl_post) emit(r);
    bytes(img.trailer);
}

// index of the first libxc record of TYPE
size_t find(const Image& img, uint32_t type) {
    for (size_t i = 0; i < img.libxc.size(); ++i)
        if (img.libxc[i].type == type) return i;
    throw Bad{"the image has no libxc record of type " + std::to_string(type)};
}
Rec& rec(Image& img, uint32_t type) { return img.libxc[find(img, type)]; }
void erase(Image& img, uint32_t type) { img.libxc.erase(img.libxc.begin() + long(find(img, type))); }
void insert_before(Image& img, uint32_t before, Rec r) {
    img.libxc.insert(img.libxc.begin() + long(find(img, before)), std::move(r));
}
// move the first record of TYPE to just before the first record of BEFORE
void move_before(Image& img, uint32_t type, uint32_t before) {
    Rec r = rec(img, type);
    erase(img, type);
    insert_before(img, before, std::move(r));
}
void move_after(Image& img, uint32_t type, uint32_t after) {
    Rec r = rec(img, type);
    erase(img, type);
    img.libxc.insert(img.libxc.begin() + long(find(img, after)) + 1, std::move(r));
}
Rec make(uint32_t type, size_t size = 0, uint8_t fill = 0) {
    Rec r;
    r.type = type;
    r.body.assign(size, fill);
    return r;
}
// The first PAGE_DATA entry of type NOTAB (0) that carries data: (record, entry).
std::pair<size_t, size_t> first_notab(Image& img) {
    for (size_t i = 0; i < img.libxc.size(); ++i) {
        const Rec& r = img.libxc[i];
        if (r.type != kPageData) continue;
        uint32_t count = le32(r.body.data());
        for (size_t e = 0; e < count; ++e)
            if ((le64(r.body.data() + 8 + 8 * e) >> 60) == 0) return {i, e};
    }
    throw Bad{"no NOTAB page"};
}
uint8_t* pfn_entry(Image& img, std::pair<size_t, size_t> at) {
    return img.libxc[at.first].body.data() + 8 + 8 * at.second;
}

// A page sent in PAGE_DATA: its record, its entry, its pfn and, for a page
// that carries data, the offset of its 4096 octets in the record body.
struct Sent {
    size_t record, entry;
    uint64_t pfn;
    size_t data;
};
// Calls F(sent, type) for every PAGE_DATA entry, in stream order, until F
// returns true. `data` is meaningful for the types that carry data (all but
// BROKEN, XALLOC and XTAB).
template <typename F>
void each_sent(Image& img, F f) {
    for (size_t i = 0; i < img.libxc.size(); ++i) {
        const Rec& r = img.libxc[i];
        if (r.type != kPageData) continue;
        const uint32_t count = le32(r.body.data());
        size_t data = 8 + 8 * size_t(count);
        for (size_t e = 0; e < count; ++e) {
            const uint64_t entry = le64(r.body.data() + 8 + 8 * e);
            const unsigned type = unsigned(entry >> 60);
            if (f(Sent{i, e, entry & ((uint64_t(1) << 52) - 1), data}, type)) return;
            if (type < 0xd) data += 4096;
        }
    }
}
// The first page whose type (the entry's top nibble) satisfies WANT.
Sent first_sent(Image& img, const std::function<bool(unsigned)>& want) {
    std::optional<Sent> found;
    each_sent(img, [&](const Sent& s, unsigned type) {
        if (want(type)) found = s;
        return found.has_value();
    });
    if (!found) throw Bad{"no page of the wanted type"};
    return *found;
}
// The last copy of PFN's page (the one a restore keeps).
Sent last_copy(Image& img, uint64_t pfn) {
    std::optional<Sent> found;
    each_sent(img, [&](const Sent& s, unsigned type) {
        if (type < 0xd && s.pfn == pfn) found = s;
        return false;
    });
    if (!found) throw Bad{"pfn " + std::to_string(pfn) + " is never sent"};
    return *found;
}
bool l1_table(unsigned type) { return (type & 7) == 1; }
bool notab(unsigned type) { return type == 0; }
// vcpu_guest_context_x86_64 fields, as offsets in X86_PV_VCPU_BASIC's body
// (an 8-octet vcpu id and reserved field come first).
constexpr size_t kCtxRdx = 8 + 616, kCtxGdtFrames = 8 + 4832, kCtxGdtEnts = 8 + 4960, kCtxCr3 = 8 + 5008;

struct Case {
    const char* name;  // RULE-ID-what: the file name
    const char* what;
    std::function<void(Image&)> apply;  // edits the image
};

std::vector<Case> cases() {
    std::vector<Case> c;
    auto img_case = [&](const char* name, const char* what, std::function<void(Image&)> f) {
        c.push_back({name, what, std::move(f)});
    };
    img_case("control", "the image as xl saved it", [](Image&) {});
    // xl header
    img_case("CONT-XL-02-byteorder", "byteorder 0x01020304 -> 0x01020305",
             [](Image& i) { put_le32(i.xl_header.data() + 32, 0x01020305); });
    img_case("CONT-XL-04-mandatory-flag", "mandatory_flags |= bit 2",
             [](Image& i) { put_le32(i.xl_header.data() + 36, le32(i.xl_header.data() + 36) | 4); });
    img_case("CONT-XL-05-optional-flag", "optional_flags = 1",
             [](Image& i) { put_le32(i.xl_header.data() + 40, 1); });
    img_case("CONT-XL-08-config-len", "config_len = optional_data_len (4 octets too many)", [](Image& i) {
        put_le32(i.optional.data(), uint32_t(i.optional.size()));
    });
    img_case("CONT-XL-11-after-config", "8 octets appended to the optional data after the config", [](Image& i) {
        i.optional.insert(i.optional.end(), 8, 0x5a);
        put_le32(i.xl_header.data() + 44, uint32_t(i.optional.size()));
    });
    // libxl header and records
    img_case("LIBXL-HDR-02-version", "libxl version 2 -> 3", [](Image& i) { put_be32(i.libxl_header.data() + 8, 3); });
    img_case("LIBXL-HDR-03-big-endian", "libxl options bit 0 set",
             [](Image& i) { put_be32(i.libxl_header.data() + 12, be32(i.libxl_header.data() + 12) | 1); });
    img_case("LIBXL-HDR-04-options", "libxl options bit 4 set",
             [](Image& i) { put_be32(i.libxl_header.data() + 12, be32(i.libxl_header.data() + 12) | 0x10); });
    img_case("LIBXL-REC-03-undefined-type", "a libxl record of type 6 (empty) before LIBXC_CONTEXT",
             [](Image& i) { i.libxl_pre.insert(i.libxl_pre.end() - 1, make(6)); });
    img_case("LIBXL-REC-04-unknown-optional", "a libxl record of type 0x80000006 (empty) before LIBXC_CONTEXT",
             [](Image& i) { i.libxl_pre.insert(i.libxl_pre.end() - 1, make(0x80000006)); });
    img_case("LIBXL-REC-05-context-body", "LIBXC_CONTEXT carries an 8-octet body of zeros",
             [](Image& i) { i.libxl_pre.back().body.assign(8, 0); });
    img_case("LIBXL-ORDER-04-emulator-in-pv", "an EMULATOR_CONTEXT (id 1, index 0, 8 octets) after the libxc stream",
             [](Image& i) {
                 Rec r = make(kEmulatorContext, 16);
                 put_le32(r.body.data(), 1);
                 i.libxl_post.insert(i.libxl_post.end() - 1, r);
             });
    // libxc headers
    img_case("LIBXC-IHDR-01-marker", "image marker's last octet 0xff -> 0xfe", [](Image& i) { i.ihdr[7] = 0xfe; });
    img_case("LIBXC-IHDR-02-id", "image id XENF -> XENG", [](Image& i) { i.ihdr[11] = 'G'; });
    img_case("LIBXC-IHDR-03-version", "libxc version 3 -> 4", [](Image& i) { put_be32(i.ihdr.data() + 12, 4); });
    img_case("LIBXC-IHDR-04-big-endian", "libxc options bit 0 set", [](Image& i) { i.ihdr[17] |= 1; });
    img_case("LIBXC-IHDR-05-options", "libxc options bit 3 set", [](Image& i) { i.ihdr[17] |= 8; });
    img_case("LIBXC-IHDR-06-reserved", "the image header's second reserved field = 1", [](Image& i) { i.ihdr[23] = 1; });
    img_case("LIBXC-DHDR-01-type", "domain type 1 -> 3", [](Image& i) { put_le32(i.dhdr.data(), 3); });
    img_case("LIBXC-DHDR-02-page-shift", "page_shift 12 -> 13", [](Image& i) { i.dhdr[4] = 13; });
    img_case("LIBXC-DHDR-03-reserved", "the domain header's reserved field = 1", [](Image& i) { i.dhdr[6] = 1; });
    img_case("LIBXC-DHDR-04-hvm-type", "domain type 1 (PV) -> 2 (HVM), config still PV",
             [](Image& i) { put_le32(i.dhdr.data(), 2); });
    // libxc framing and record types
    img_case("LIBXC-REC-01-huge-length", "X86_TSC_INFO length field 24 -> 0x10000000",
             [](Image& i) { rec(i, kTscInfo).length = 0x10000000; });
    img_case("LIBXC-REC-02-padding", "an unknown optional record 0x80001234 with a 4-octet body and padding 0xff",
             [](Image& i) {
                 Rec r = make(0x80001234, 4, 1);
                 r.pad_fill = 0xff;
                 insert_before(i, kSharedInfo, r);
             });
    img_case("LIBXC-REC-03-unknown-mandatory", "an empty record of type 0x1234 before SHARED_INFO",
             [](Image& i) { insert_before(i, kSharedInfo, make(0x1234)); });
    img_case("LIBXC-REC-04-unknown-optional", "an empty record of type 0x80001234 before SHARED_INFO",
             [](Image& i) { insert_before(i, kSharedInfo, make(0x80001234)); });
    img_case("LIBXC-REC-06-hvm-params-in-pv", "an HVM_PARAMS record (count 0) before SHARED_INFO",
             [](Image& i) { insert_before(i, kSharedInfo, make(kHvmParams, 8)); });
    img_case("LIBXC-REC-07-toolstack", "an empty TOOLSTACK record before SHARED_INFO",
             [](Image& i) { insert_before(i, kSharedInfo, make(kToolstack)); });
    img_case("LIBXC-REC-08-dirty-pfn-list", "an empty CHECKPOINT_DIRTY_PFN_LIST before SHARED_INFO",
             [](Image& i) { insert_before(i, kSharedInfo, make(kDirtyPfnList)); });
    img_case("LIBXC-REC-09-sde-body", "STATIC_DATA_END carries 8 octets of zeros",
             [](Image& i) { rec(i, kStaticDataEnd).body.assign(8, 0); });
    img_case("LIBXC-REC-10-v3-record-in-v2", "version 3 -> 2 and STATIC_DATA_END dropped: the CPUID/MSR policies stay",
             [](Image& i) {
                 put_be32(i.ihdr.data() + 12, 2);
                 erase(i, kStaticDataEnd);
             });
    // order
    img_case("LIBXC-ORDER-01-sde-late", "STATIC_DATA_END moved after X86_PV_P2M_FRAMES",
             [](Image& i) { move_after(i, kStaticDataEnd, kP2mFrames); });
    img_case("LIBXC-ORDER-02-two-sde", "a second STATIC_DATA_END right after the first", [](Image& i) {
        i.libxc.insert(i.libxc.begin() + long(find(i, kStaticDataEnd)), make(kStaticDataEnd));
    });
    img_case("LIBXC-ORDER-05-two-pv-info", "X86_PV_INFO written twice", [](Image& i) {
        Rec r = rec(i, kPvInfo);
        i.libxc.insert(i.libxc.begin() + long(find(i, kPvInfo)), r);
    });
    img_case("LIBXC-ORDER-06-pv-info-after-sde", "X86_PV_INFO moved right after STATIC_DATA_END",
             [](Image& i) { move_after(i, kPvInfo, kStaticDataEnd); });
    img_case("LIBXC-ORDER-07-shared-info-first", "SHARED_INFO moved before X86_PV_INFO",
             [](Image& i) { move_before(i, kSharedInfo, kPvInfo); });
    img_case("LIBXC-ORDER-09-page-before-p2m", "X86_PV_P2M_FRAMES moved after the first PAGE_DATA",
             [](Image& i) { move_after(i, kP2mFrames, kPageData); });
    img_case("LIBXC-ORDER-12-no-vcpu0", "X86_PV_VCPU_BASIC of vcpu 0 removed", [](Image& i) { erase(i, kVcpuBasic); });
    img_case("LIBXC-ORDER-13-no-pv-info", "X86_PV_INFO removed", [](Image& i) { erase(i, kPvInfo); });
    img_case("LIBXC-ORDER-13-no-p2m-frames", "X86_PV_P2M_FRAMES removed", [](Image& i) { erase(i, kP2mFrames); });
    // PAGE_DATA
    img_case("LIBXC-PAGE-03-bad-type", "the first NOTAB page's type 0 -> 5", [](Image& i) {
        uint8_t* p = pfn_entry(i, first_notab(i));
        put_le64(p, le64(p) | uint64_t(5) << 60);
    });
    img_case("LIBXC-PAGE-04-reserved-bits", "the first NOTAB page's pfn bit 52 set", [](Image& i) {
        uint8_t* p = pfn_entry(i, first_notab(i));
        put_le64(p, le64(p) | uint64_t(1) << 52);
    });
    img_case("LIBXC-PAGE-06-reserved", "the first PAGE_DATA's reserved u32 = 1",
             [](Image& i) { put_le32(rec(i, kPageData).body.data() + 4, 1); });
    img_case("LIBXC-PAGE-09-pfn-beyond-p2m", "the first NOTAB page's pfn -> 0x1000000 (beyond max_pfn)",
             [](Image& i) {
                 uint8_t* p = pfn_entry(i, first_notab(i));
                 put_le64(p, (le64(p) & ~((uint64_t(1) << 52) - 1)) | 0x1000000);
             });
    img_case("LIBXC-PAGE-11-pte-beyond-max-pfn",
             "the first L1 table's first entry -> present, pfn 0xfffffff (beyond max_pfn)", [](Image& i) {
                 const Sent l1 = first_sent(i, l1_table);
                 put_le64(i.libxc[l1.record].body.data() + l1.data, (uint64_t(0xfffffff) << 12) | 0x67);
             });
    // X86_PV_INFO
    img_case("LIBXC-PVINFO-01-short", "X86_PV_INFO body cut to 4 octets",
             [](Image& i) { rec(i, kPvInfo).body.resize(4); });
    img_case("LIBXC-PVINFO-03-width8-levels3", "pt_levels 4 -> 3 (guest_width 8)",
             [](Image& i) { rec(i, kPvInfo).body[1] = 3; });
    img_case("LIBXC-PVINFO-03-width4-levels4", "guest_width 8 -> 4 (pt_levels 4)",
             [](Image& i) { rec(i, kPvInfo).body[0] = 4; });
    img_case("LIBXC-PVINFO-04-reserved", "X86_PV_INFO reserved octet 7 = 1", [](Image& i) { rec(i, kPvInfo).body[7] = 1; });
    // X86_PV_P2M_FRAMES
    img_case("LIBXC-P2M-02-start-after-end", "start_pfn = end_pfn + 1", [](Image& i) {
        Rec& r = rec(i, kP2mFrames);
        put_le32(r.body.data(), le32(r.body.data() + 4) + 1);
    });
    img_case("LIBXC-P2M-03-short", "the last p2m frame pfn dropped (body 8 octets short)",
             [](Image& i) { rec(i, kP2mFrames).body.resize(rec(i, kP2mFrames).body.size() - 8); });
    img_case("LIBXC-P2M-05-frame-missing", "start_pfn = one frame's worth of pfns, the first frame pfn dropped",
             [](Image& i) {
                 Body& b = rec(i, kP2mFrames).body;
                 put_le32(b.data(), 4096 / 8);
                 std::memmove(b.data() + 8, b.data() + 16, b.size() - 16);
                 b.resize(b.size() - 8);
             });
    img_case("LIBXC-P2M-06-frame-l1", "the first p2m frame pfn -> the first L1 table's pfn", [](Image& i) {
        const uint64_t pfn = first_sent(i, l1_table).pfn;
        put_le64(rec(i, kP2mFrames).body.data() + 8, pfn);
    });
    // vCPU records
    img_case("LIBXC-VCPU-02-vcpu-id", "a copy of X86_PV_VCPU_BASIC for vcpu 5 (the guest has 1)", [](Image& i) {
        Rec r = rec(i, kVcpuBasic);
        put_le32(r.body.data(), 5);
        i.libxc.insert(i.libxc.begin() + long(find(i, kVcpuBasic)) + 1, r);
    });
    img_case("LIBXC-VCPU-03-reserved", "X86_PV_VCPU_BASIC reserved field = 1",
             [](Image& i) { put_le32(rec(i, kVcpuBasic).body.data() + 4, 1); });
    img_case("LIBXC-VCPU-05-basic-size", "X86_PV_VCPU_BASIC blob 8 octets short",
             [](Image& i) { rec(i, kVcpuBasic).body.resize(rec(i, kVcpuBasic).body.size() - 8); });
    img_case("LIBXC-VCPU-14-start-info-l1", "vcpu 0's start_info (rdx) -> the first L1 table's pfn", [](Image& i) {
        const uint64_t pfn = first_sent(i, l1_table).pfn;
        put_le64(rec(i, kVcpuBasic).body.data() + kCtxRdx, pfn);
    });
    img_case("LIBXC-VCPU-15-gdt-l1", "vcpu 0's first GDT frame -> the first L1 table's pfn (gdt_ents at least 1)",
             [](Image& i) {
                 const uint64_t pfn = first_sent(i, l1_table).pfn;
                 Body& b = rec(i, kVcpuBasic).body;
                 if (le64(b.data() + kCtxGdtEnts) == 0) put_le64(b.data() + kCtxGdtEnts, 1);
                 put_le64(b.data() + kCtxGdtFrames, pfn);
             });
    img_case("LIBXC-VCPU-16-cr3-notab", "vcpu 0's cr3 -> the first NOTAB page", [](Image& i) {
        const uint64_t pfn = first_sent(i, notab).pfn;
        put_le64(rec(i, kVcpuBasic).body.data() + kCtxCr3, pfn << 12);
    });
    img_case("LIBXC-VCPU-17-store-beyond", "the xenstore pfn in vcpu 0's start_info page -> 0xfffffff (beyond max_pfn)",
             [](Image& i) {
                 const Sent si = last_copy(i, le64(rec(i, kVcpuBasic).body.data() + kCtxRdx));
                 put_le64(i.libxc[si.record].body.data() + si.data + 56, 0xfffffff);
             });
    // other records
    img_case("LIBXC-SINFO-01-size", "SHARED_INFO body 4096 -> 4088 octets",
             [](Image& i) { rec(i, kSharedInfo).body.resize(4088); });
    img_case("LIBXC-TSC-01-size", "X86_TSC_INFO body 24 -> 16 octets", [](Image& i) { rec(i, kTscInfo).body.resize(16); });
    img_case("LIBXC-TSC-02-reserved", "X86_TSC_INFO reserved = 1",
             [](Image& i) { put_le32(rec(i, kTscInfo).body.data() + 20, 1); });
    img_case("LIBXC-TSC-03-mode", "X86_TSC_INFO mode = 7", [](Image& i) { put_le32(rec(i, kTscInfo).body.data(), 7); });
    // the end
    img_case("STREAM-05-no-libxc-end", "the stream cut just before the libxc END record", [](Image& i) {
        i.libxc.pop_back();
        i.libxl_post.clear();
        i.trailer.clear();
    });
    img_case("STREAM-07-no-libxl-end", "the libxl END record cut off", [](Image& i) {
        i.libxl_post.pop_back();
        i.trailer.clear();
    });
    img_case("STREAM-06-after-end", "16 octets of 0x5a after the libxl END",
             [](Image& i) { i.trailer.insert(i.trailer.end(), 16, 0x5a); });
    return c;
}

int usage() {
    std::cerr << "usage: mutate --list | mutate IMAGE CASE OUT\n";
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<Case> all = cases();
    if (argc == 2 && std::string(argv[1]) == "--list") {
        for (const auto& c : all) std::cout << c.name << '\t' << c.what << '\n';
        return 0;
    }
    if (argc != 4) return usage();
    const Case* which = nullptr;
    for (const auto& c : all)
        if (c.name == std::string(argv[2])) which = &c;
    if (!which) {
        std::cerr << "mutate: no case " << argv[2] << '\n';
        return 2;
    }
    // The image is mapped, not read: record bodies stay views into it.
    const int fd = ::open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || st.st_size <= 0) {
        std::cerr << "mutate: cannot read " << argv[1] << '\n';
        return 2;
    }
    const size_t size = static_cast<size_t>(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) {
        std::cerr << "mutate: cannot map " << argv[1] << '\n';
        return 2;
    }
    Image img;
    try {
        img = parse(static_cast<const uint8_t*>(map), size);
        which->apply(img);
    } catch (const Bad& b) {
        std::cerr << "mutate: " << argv[1] << ": " << b.what << '\n';
        return 1;
    }
    std::ofstream o(argv[3], std::ios::binary | std::ios::trunc);
    serialise(img, o);
    o.close();
    if (!o) {
        std::cerr << "mutate: cannot write " << argv[3] << '\n';
        return 2;
    }
    return 0;
}
