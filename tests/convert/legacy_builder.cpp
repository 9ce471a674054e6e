#include "tests/convert/legacy_builder.h"

#include <algorithm>
#include <cstring>
#include <set>

#include <xenstream/codecs/remus/remus_codec.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/containers.h>
#include "tools/convert/legacy_format.h"

namespace xenstream::convert::testing {

namespace lg = legacy;

namespace {

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<std::byte> pattern(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> v(n);
  std::uint64_t s = seed;
  for (std::size_t i = 0; i < n; i += 8) {
    const std::uint64_t r = splitmix(s);
    for (std::size_t j = 0; j < 8 && i + j < n; ++j) v[i + j] = std::byte(r >> (8 * j));
  }
  return v;
}

}  // namespace

Page make_page(std::uint64_t seed) {
  Page p;
  const auto v = pattern(p.size(), seed * 7919 + 17);
  std::memcpy(p.data(), v.data(), p.size());
  return p;
}

Page page_version(std::uint64_t pfn, unsigned v) {
  Page p = make_page(pfn);
  std::uint64_t s = pfn * 1000003 + 1;
  for (unsigned k = 1; k <= v; ++k) {
    // A few runs of changed words per version, at places that move.
    const unsigned runs = 1 + static_cast<unsigned>(splitmix(s) % 6);
    for (unsigned r = 0; r < runs; ++r) {
      const std::size_t word = splitmix(s) % 1024;
      const std::size_t len = 1 + splitmix(s) % (k % 3 == 0 ? 300 : 20);
      for (std::size_t w = word; w < std::min<std::size_t>(1024, word + len); ++w) {
        const std::uint64_t x = splitmix(s);
        std::memcpy(p.data() + 4 * w, &x, 4);
      }
    }
  }
  return p;
}

std::vector<std::byte> make_hvm_context(std::uint64_t changeset) {
  LegacyBuilder b(8);
  b.u32(1 | (0u << 16)).u32(24);  // HEADER, instance 0
  b.u32(0x54381286).u32(1).u64(changeset).u32(0x000306c3).u32(2400000);
  b.u32(0).u32(0);  // END
  return b.bytes();
}

std::vector<std::byte> make_qemu_state(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> q;
  q.reserve(size);
  auto be32 = [&q](std::uint32_t v) {
    for (int i = 3; i >= 0; --i) q.push_back(std::byte(v >> (8 * i)));
  };
  be32(0x5145564D);  // "QEVM"
  be32(3);
  q.push_back(std::byte{0x04});  // FULL section
  be32(1);                       // section id
  const std::string idstr = "xen-test";
  q.push_back(std::byte(idstr.size()));
  for (char c : idstr) q.push_back(std::byte(c));
  be32(0);  // instance
  be32(1);  // version
  std::uint64_t s = seed * 977 + 3;
  while (q.size() + 1 < size) q.push_back(std::byte(0x30 + splitmix(s) % 0x4B));
  q.push_back(std::byte{0x00});  // EOF
  return q;
}

std::vector<std::byte> physmap_v1(unsigned width, const std::vector<PhysmapEntry>& entries,
                                  std::uint32_t version) {
  LegacyBuilder b(width);
  b.u32(version).u32(static_cast<std::uint32_t>(entries.size()));
  for (const PhysmapEntry& e : entries) {
    b.u64(e.phys_offset).u64(e.start_addr).u64(e.size);
    const std::uint32_t namelen = e.name.empty() ? 0 : static_cast<std::uint32_t>(e.name.size() + 1);
    b.u32(namelen);
    if (namelen) b.text(e.name).u8(0);
    if (width == 8) b.u8(0xde).u8(0xad).u8(0xbe).u8(0xef);  // the junk libxl left there
  }
  return b.bytes();
}

std::vector<std::byte> physmap_xenstore(const std::vector<PhysmapEntry>& entries) {
  std::vector<std::byte> out;
  auto add = [&](const std::string& s) {
    for (char c : s) out.push_back(std::byte(c));
    out.push_back(std::byte{0});
  };
  auto hx = [](std::uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
    return std::string(buf);
  };
  for (const PhysmapEntry& e : entries) {
    const std::string root = "physmap/" + hx(e.phys_offset);
    add(root + "/start_addr");
    add(hx(e.start_addr));
    add(root + "/size");
    add(hx(e.size));
    if (!e.name.empty()) {
      add(root + "/name");
      add(e.name);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

LegacyBuilder& LegacyBuilder::u8(std::uint8_t v) {
  out_.push_back(std::byte{v});
  return *this;
}
LegacyBuilder& LegacyBuilder::u32(std::uint32_t v) {
  const std::size_t at = out_.size();
  out_.resize(at + 4);
  put_u32(out_.data() + at, v, ByteOrder::kLittle);
  return *this;
}
LegacyBuilder& LegacyBuilder::u64(std::uint64_t v) {
  const std::size_t at = out_.size();
  out_.resize(at + 8);
  put_u64(out_.data() + at, v, ByteOrder::kLittle);
  return *this;
}
LegacyBuilder& LegacyBuilder::ulong(std::uint64_t v) {
  return width_ == 4 ? u32(static_cast<std::uint32_t>(v)) : u64(v);
}
LegacyBuilder& LegacyBuilder::raw(Bytes b) {
  out_.insert(out_.end(), b.begin(), b.end());
  return *this;
}
LegacyBuilder& LegacyBuilder::text(std::string_view s) {
  return raw(Bytes(reinterpret_cast<const std::byte*>(s.data()), s.size()));
}

LegacyBuilder& LegacyBuilder::xl_header(std::uint32_t mandatory, std::string_view config,
                                        std::uint32_t optional_flags) {
  XlHeaderSpec h;
  h.mandatory_flags = mandatory;
  h.optional_flags = optional_flags;
  h.config = config;
  return raw(xl_header_bytes(h));
}

LegacyBuilder& LegacyBuilder::ext_info(const std::vector<ExtBlock>& blocks, std::optional<std::uint32_t> total) {
  std::uint32_t sum = 0;
  for (const ExtBlock& b : blocks) sum += 8 + static_cast<std::uint32_t>(b.data.size());
  ulong(width_ == 4 ? 0xFFFFFFFFull : ~0ull).u32(total.value_or(sum));
  for (const ExtBlock& b : blocks) {
    text(b.id).u32(b.declared_size.value_or(static_cast<std::uint32_t>(b.data.size()))).raw(b.data);
  }
  return *this;
}

LegacyBuilder& LegacyBuilder::p2m_frames(const std::vector<std::uint64_t>& frames) {
  for (std::uint64_t f : frames) ulong(f);
  return *this;
}

LegacyBuilder& LegacyBuilder::batch(const std::vector<std::uint64_t>& entries, const std::vector<Page>& pages,
                                    bool with_pages) {
  i32(static_cast<std::int32_t>(entries.size()));
  for (std::uint64_t e : entries) ulong(e);
  if (!with_pages) return *this;
  std::size_t p = 0;
  for (std::uint64_t e : entries) {
    if (((e & 0xF0000000u) >> 28) < 0xD) page(pages.at(p++));
  }
  return *this;
}

LegacyBuilder& LegacyBuilder::vcpu_info(std::int32_t max_id, const std::vector<std::uint64_t>& words) {
  i32(static_cast<std::int32_t>(lg::ChunkId::kVcpuInfo)).i32(max_id);
  for (std::uint64_t w : words) u64(w);
  return *this;
}

LegacyBuilder& LegacyBuilder::vcpu_info(const std::vector<std::uint32_t>& online) {
  std::uint32_t max_id = 0;
  for (std::uint32_t id : online) max_id = std::max(max_id, id);
  std::vector<std::uint64_t> words(max_id / 64 + 1);
  for (std::uint32_t id : online) words[id / 64] |= std::uint64_t{1} << (id % 64);
  return vcpu_info(static_cast<std::int32_t>(max_id), words);
}

LegacyBuilder& LegacyBuilder::hvm_chunk(std::int32_t id, std::uint64_t value, std::uint32_t pad) {
  return i32(id).u32(pad).u64(value);
}

LegacyBuilder& LegacyBuilder::tsc_info(std::uint32_t mode, std::uint64_t nsec, std::uint32_t khz,
                                       std::uint32_t incarnation) {
  return i32(static_cast<std::int32_t>(lg::ChunkId::kTscInfo)).u32(mode).u64(nsec).u32(khz).u32(incarnation);
}

LegacyBuilder& LegacyBuilder::toolstack(const std::vector<std::byte>& data) {
  return i32(static_cast<std::int32_t>(lg::ChunkId::kToolstack)).u32(static_cast<std::uint32_t>(data.size())).raw(data);
}

LegacyBuilder& LegacyBuilder::compressed(Bytes data) {
  return i32(static_cast<std::int32_t>(lg::ChunkId::kCompressedData)).ulong(data.size()).raw(data);
}

LegacyBuilder& LegacyBuilder::unmapped(const std::vector<std::uint64_t>& pfns) {
  u32(static_cast<std::uint32_t>(pfns.size()));
  for (std::uint64_t p : pfns) ulong(p);
  return *this;
}

LegacyBuilder& LegacyBuilder::xsave(std::uint64_t mask, const std::vector<std::byte>& data) {
  return u64(mask).u64(data.size()).raw(data);
}

LegacyBuilder& LegacyBuilder::hvm_tail(std::uint64_t ioreq, std::uint64_t bufioreq, std::uint64_t store,
                                       const std::vector<std::byte>& context) {
  return u64(ioreq).u64(bufioreq).u64(store).u32(static_cast<std::uint32_t>(context.size())).raw(context);
}

LegacyBuilder& LegacyBuilder::qemu(std::string_view signature, const std::vector<std::byte>& data, bool to_end) {
  text(signature);
  if (!to_end) u32(static_cast<std::uint32_t>(data.size()));
  return raw(data);
}

// ---------------------------------------------------------------------------

Scenario build_scenario(const ScenarioOptions& o) {
  const bool pv = o.guest == GuestType::kPv;
  LegacyBuilder b(o.width);
  Scenario s;
  std::map<std::uint64_t, Page> memory;
  std::map<std::uint64_t, unsigned> version;
  std::uint64_t rng = o.seed * 0x1234567 + 99;
  codecs::remus::Encoder encoder;

  if (o.xl_header) b.xl_header(format::xl::kMandatoryJson, o.xl_config);
  const std::uint64_t p2m = o.p2m_size ? o.p2m_size : o.pages + 16;
  b.p2m_size(p2m);
  if (pv) {
    const std::uint32_t ctx = o.guest_width == 8 ? lg::kVcpuContextSize64 : lg::kVcpuContextSize32;
    std::vector<ExtBlock> blocks{{"vcpu", pattern(ctx, o.seed + 5), {}}};
    if (o.extv) blocks.push_back({"extv", {}, {}});
    if (o.xsave_size) {
      LegacyBuilder x(4);
      x.u32(lg::kXsaveHeaderSize + o.xsave_size);
      blocks.push_back({"xcnt", x.bytes(), {}});
    }
    b.ext_info(blocks);
    const std::uint64_t fpp = 4096 / o.guest_width;
    std::vector<std::uint64_t> frames((p2m - 1) / fpp + 1);
    for (std::size_t i = 0; i < frames.size(); ++i) frames[i] = o.pages - 1 - i;
    b.p2m_frames(frames);
  }

  struct Sent {
    std::uint64_t entry;
    std::optional<Page> page;
  };
  // Writes `sent` as batches of o.batch entries (format A or B).
  auto send = [&](const std::vector<Sent>& sent, bool compressed) {
    std::vector<std::byte> stream;
    for (std::size_t i = 0; i < sent.size(); i += o.batch) {
      std::vector<std::uint64_t> entries;
      std::vector<Page> pages;
      for (std::size_t j = i; j < std::min(sent.size(), i + o.batch); ++j) {
        entries.push_back(sent[j].entry);
        if (sent[j].page) {
          pages.push_back(*sent[j].page);
          if (compressed) {
            const unsigned type = static_cast<unsigned>((sent[j].entry >> 28) & 0xF);
            encoder.encode(sent[j].entry & 0x0FFFFFFF, *sent[j].page, type != 0, stream);
            ++s.compressed_pages;
          }
        }
      }
      b.batch(entries, pages, !compressed);
    }
    if (!compressed) return;
    // COMPRESSED_DATA chunks: whole encodings up to the chunk size, or cut
    // anywhere when split_encodings.
    std::size_t at = 0;
    while (at < stream.size()) {
      std::size_t n = std::min(o.compressed_chunk, stream.size() - at);
      if (o.split_encodings) n = std::min<std::size_t>(n, 1 + splitmix(rng) % 3000);
      if (!o.split_encodings && at + n < stream.size()) {
        // Back up to the end of the last whole encoding inside the chunk.
        std::size_t end = at;
        for (;;) {
          auto len = codecs::remus::encoded_length(Bytes(stream).subspan(end), end);
          if (!len || end + *len > at + n) break;
          end += *len;
        }
        if (end > at) n = end - at;
      }
      b.compressed(Bytes(stream).subspan(at, n));
      at += n;
    }
  };
  std::map<std::uint64_t, unsigned> type_of;
  // A PV guest's top-level page table, which every vcpu's cr3 names: Xen
  // wants an L4 table (64-bit) or L3 table (32-bit PAE) there.
  const unsigned top_level = o.guest_width == 8 ? 4 : 3;
  const std::uint64_t top_table = pv && o.all_page_types ? 16 + top_level - 1 : 1;
  auto put = [&](std::uint64_t pfn, unsigned type) {
    Page p = page_version(pfn, version[pfn]);
    if ((type & 7) >= 1 && (type & 7) <= 4) {
      // A page table's entries (8 octets, PAE or 64-bit) are not present:
      // random ones would name pfns beyond max_pfn.
      for (std::size_t e = 0; e < p.size(); e += 8) p[e] &= std::byte{0xFE};
    }
    memory[pfn] = p;
    type_of[pfn] = type;
    return Sent{(std::uint64_t{type} << 28) | pfn, p};
  };

  std::size_t cut_at = 0;
  for (unsigned c = 1; c <= o.checkpoints; ++c) {
    const bool compressed = o.compress && c >= 2;
    const std::size_t checkpoint_start = b.size();
    std::vector<std::byte> q;
    if (c == 1 && o.tmem) {
      // xc_tmem_save: version, max pools, marker, client flags/weight/cap,
      // marker, one ephemeral pool (no pages), end of pools.
      b.i32(static_cast<std::int32_t>(lg::ChunkId::kTmem));
      b.u32(1).u32(16).u32(0xFFFFFFFF).u32(0).u32(100).u32(0).u32(0xFFFFFFFF);
      b.u32(0).u32(0).u32(0).u64(0x1234).u64(0x5678);
      b.u32(0xFFFFFFFF);
    }
    if (c == 1 && o.tsc) b.tsc_info(1, 123456789012ull, 2400000, 7);

    std::vector<Sent> sent;
    if (c == 1) {
      for (std::uint64_t pfn = 0; pfn < o.pages; ++pfn) {
        unsigned type = 0;
        if (pv && o.all_page_types && pfn >= 16 && pfn < 24) {
          static constexpr unsigned kTables[] = {1, 2, 3, 4, 9, 10, 11, 12};
          type = kTables[pfn - 16];
        } else if (pv && pfn == top_table) {
          type = top_level;
        }
        if (o.lone_lpintab && pfn == 2) type = 8;
        sent.push_back(put(pfn, type));
        if (o.xtab_padding && pfn % 7 == 3) sent.push_back(Sent{lg::kXtabPadding, {}});
      }
      if (o.all_page_types) {
        // Entries without data: BROKEN, XALLOC and XTAB with real pfns, in
        // the hole above the sent pages, and bare padding.
        sent.insert(sent.begin() + 3, Sent{(std::uint64_t{0xD} << 28) | (o.pages + 1), {}});
        sent.insert(sent.begin() + 5, Sent{(std::uint64_t{0xE} << 28) | (o.pages + 2), {}});
        sent.insert(sent.begin() + 6, Sent{(std::uint64_t{0xF} << 28) | (o.pages + 3), {}});
        sent.insert(sent.begin() + 7, Sent{lg::kXtabPadding, {}});
      }
    } else {
      std::set<std::uint64_t> dirty;
      while (dirty.size() < std::min<std::uint32_t>(o.dirty, o.pages)) dirty.insert(splitmix(rng) % o.pages);
      for (std::uint64_t pfn : dirty) {
        ++version[pfn];
        sent.push_back(put(pfn, type_of[pfn]));
      }
    }
    send(sent, compressed);
    if (c == 1 && o.delta_against_first) {
      std::vector<std::byte> discard;
      for (const Sent& x : sent) {
        if (x.page) encoder.encode(x.entry & 0x0FFFFFFF, *x.page, false, discard);
      }
    }
    if (c == 1 && o.padding_only_batch) b.batch({lg::kXtabPadding, lg::kXtabPadding}, {});
    if (c == 1 && o.live) {
      // Second pass: pages dirtied while the first was sent.
      std::vector<Sent> second;
      for (std::uint64_t pfn = 1; pfn < o.pages; pfn += 5) {
        ++version[pfn];
        second.push_back(put(pfn, type_of[pfn]));
      }
      send(second, false);
    }
    if (c == 1 && o.verify_mode) {
      b.marker(static_cast<std::int32_t>(lg::ChunkId::kEnableVerifyMode));
      std::vector<Sent> again;
      for (std::uint64_t pfn = 0; pfn < o.pages; ++pfn) {
        again.push_back(Sent{(std::uint64_t{type_of[pfn]} << 28) | pfn, memory[pfn]});
      }
      send(again, false);
    }

    if (c == 1 && o.tmem) {
      b.i32(static_cast<std::int32_t>(lg::ChunkId::kTmemExtra));
      b.u32(0).u64(1).u64(2).u64(3).u32(4);
      b.u32(0).u64(5).u64(6).u64(7).u32(8);
      b.u32(0xFFFFFFFF);
    }
    if (o.vcpu_info) b.vcpu_info(o.vcpus);
    if (!pv && o.hvm_chunks) {
      b.hvm_chunk(-14, 0xfeff0000 + c);
      b.hvm_chunk(-3, 0xfeffd000);
      b.hvm_chunk(-15, 0x1000 + c);
      b.hvm_chunk(-16, 0x1001);
      b.hvm_chunk(-17, 0x1002);
      b.hvm_chunk(-4, 0xfeffb000);
      b.hvm_chunk(-8, 0xfeffc);
      b.hvm_chunk(-10, 1);
      b.hvm_chunk(-11, 0x1f, 0xabcd);  // a non-zero pad is ignored
      b.hvm_chunk(-19, 0xfeff0);
      b.hvm_chunk(-20, 2);
    }
    if (o.toolstack) {
      b.toolstack(physmap_v1(o.width, pv ? std::vector<PhysmapEntry>{} : o.physmap));
      s.xenstore = pv ? std::vector<std::byte>{} : physmap_xenstore(o.physmap);
    }
    if (o.last_checkpoint && o.checkpoints == 1) b.marker(static_cast<std::int32_t>(lg::ChunkId::kLastCheckpoint));
    if (o.compress && c == 1) b.marker(static_cast<std::int32_t>(lg::ChunkId::kEnableCompression));
    b.end_body();

    if (pv) {
      b.unmapped(c == 1 ? std::vector<std::uint64_t>{o.pages + 4, o.pages + 5} : std::vector<std::uint64_t>{});
      const std::vector<std::uint32_t> vcpus = o.vcpu_info ? o.vcpus : std::vector<std::uint32_t>{0};
      for (std::uint32_t id : vcpus) {
        // A context whose only non-zero octets are in the FPU area (the
        // first 512), so that it points at no page a verifier would check.
        std::vector<std::byte> ctx(o.guest_width == 8 ? lg::kVcpuContextSize64 : lg::kVcpuContextSize32);
        const std::vector<std::byte> fpu = pattern(512, id * 31 + c);
        std::copy(fpu.begin(), fpu.end(), ctx.begin());
        // cr3 names the top-level table (ctrlreg[3]; a 32-bit guest's cr3
        // holds the pfn rotated by 12); start_info (rdx) is pfn 0 and the
        // GDT is empty.
        if (o.guest_width == 8) {
          const std::uint64_t cr3 = top_table << 12;
          std::memcpy(ctx.data() + 5008, &cr3, 8);
        } else {
          const auto cr3 = static_cast<std::uint32_t>((top_table << 12) | (top_table >> 20));
          std::memcpy(ctx.data() + 2728, &cr3, 4);
        }
        b.raw(ctx);
        if (o.extv) b.raw(pattern(128, id * 37 + c));
        if (o.xsave_size) b.xsave(7, pattern(o.xsave_size, id * 41 + c));
      }
      b.raw(pattern(4096, 4096 + c));
    } else {
      b.hvm_tail(0xfeffe + c, 0xfefff, 0xfeffa, make_hvm_context(o.seed * 100 + c));
      q = o.qemu_size ? make_qemu_state(std::max<std::size_t>(o.qemu_size, 32), o.seed * 100 + c) : std::vector<std::byte>{};
      switch (o.qemu) {
        case QemuSig::kNone: break;
        case QemuSig::kLibxl: b.qemu(lg::kQemuSigLibxl, q); break;
        case QemuSig::kRemus: b.qemu(lg::kQemuSigRemus, q); break;
        case QemuSig::kXend: b.qemu(lg::kQemuSigXend, q, true); break;
      }
    }
    if (o.truncate_last && c == o.checkpoints && c >= 2) {
      cut_at = checkpoint_start + (b.size() - checkpoint_start) * 2 / 3;
    } else {
      s.memory = memory;
      s.complete_checkpoints = c;
      s.last_qemu = q;
    }
  }
  s.bytes = std::move(b.bytes());
  if (cut_at) s.bytes.resize(cut_at);
  return s;
}

}  // namespace xenstream::convert::testing
