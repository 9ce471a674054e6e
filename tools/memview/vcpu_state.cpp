// vCPU register decoding: see vcpu_state.h.
#include "tools/memview/vcpu_state.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

namespace xenstream::memview {
namespace {

constexpr std::size_t kPvCtx64 = 5168;
constexpr std::size_t kPvCtx32 = 2800;

// vcpu_guest_context_x86_64: flags u64 at 512, then cpu_user_regs (r15, r14,
// r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi; u32
// error_code, entry_vector; rip; u16 cs; ...; rflags at +144, rsp +152, then
// ss, es, ds, fs, gs each in an 8-octet slot), ctrlreg[8] at 4984, fs_base
// 5144, gs_base_kernel 5152, gs_base_user 5160.
VcpuRegs pv64(std::uint32_t id, const Fields& f) {
  VcpuRegs r;
  r.id = id;
  r.width = 8;
  constexpr std::size_t u = 520;
  r.r15 = f.u64(u + 0);
  r.r14 = f.u64(u + 8);
  r.r13 = f.u64(u + 16);
  r.r12 = f.u64(u + 24);
  r.rbp = f.u64(u + 32);
  r.rbx = f.u64(u + 40);
  r.r11 = f.u64(u + 48);
  r.r10 = f.u64(u + 56);
  r.r9 = f.u64(u + 64);
  r.r8 = f.u64(u + 72);
  r.rax = f.u64(u + 80);
  r.rcx = f.u64(u + 88);
  r.rdx = f.u64(u + 96);
  r.rsi = f.u64(u + 104);
  r.rdi = f.u64(u + 112);
  r.rip = f.u64(u + 128);
  r.cs = f.u16(u + 136);
  r.rflags = f.u64(u + 144);
  r.rsp = f.u64(u + 152);
  r.ss = f.u16(u + 160);
  r.es = f.u16(u + 168);
  r.ds = f.u16(u + 176);
  r.fs = f.u16(u + 184);
  r.gs = f.u16(u + 192);
  r.cr0 = f.u64(4984 + 0 * 8);
  r.user_cr3 = f.u64(4984 + 1 * 8);
  r.cr2 = f.u64(4984 + 2 * 8);
  r.cr3 = f.u64(4984 + 3 * 8);
  r.cr4 = f.u64(4984 + 4 * 8);
  r.fs_base = f.u64(5144);
  r.gs_base = f.u64(5152);
  r.gs_base_user = f.u64(5160);
  r.efer = 0xD01;  // a 64-bit PV guest always runs in long mode with SCE, LME, LMA, NXE
  return r;
}

// vcpu_guest_context_x86_32: flags u32 at 512, cpu_user_regs at 516 (ebx,
// ecx, edx, esi, edi, ebp, eax; u16 error_code, entry_vector; eip at +32, u16
// cs +36, eflags +40, esp +44, ss +48, es +52, ds +56, fs +60, gs +64),
// ctrlreg[8] (u32) at 2716. cr3 is in the 32-bit "extended cr3" form.
VcpuRegs pv32(std::uint32_t id, const Fields& f) {
  VcpuRegs r;
  r.id = id;
  r.width = 4;
  constexpr std::size_t u = 516;
  r.rbx = f.u32(u + 0);
  r.rcx = f.u32(u + 4);
  r.rdx = f.u32(u + 8);
  r.rsi = f.u32(u + 12);
  r.rdi = f.u32(u + 16);
  r.rbp = f.u32(u + 20);
  r.rax = f.u32(u + 24);
  r.rip = f.u32(u + 32);
  r.cs = f.u16(u + 36);
  r.rflags = f.u32(u + 40);
  r.rsp = f.u32(u + 44);
  r.ss = f.u16(u + 48);
  r.es = f.u16(u + 52);
  r.ds = f.u16(u + 56);
  r.fs = f.u16(u + 60);
  r.gs = f.u16(u + 64);
  r.cr0 = f.u32(2716 + 0);
  r.cr2 = f.u32(2716 + 8);
  const std::uint32_t cr3 = f.u32(2716 + 12);
  const std::uint64_t pfn = ((cr3 >> 12) | (static_cast<std::uint64_t>(cr3) << 20)) & 0xFFFFFFFFull;
  r.cr3 = pfn << 12;
  r.cr4 = f.u32(2716 + 16);
  return r;
}

VcpuRegs hvm_cpu(std::uint32_t id, const Fields& f) {
  VcpuRegs r;
  r.id = id;
  r.hvm = true;
  r.width = 8;
  r.rax = f.u64(512);
  r.rbx = f.u64(520);
  r.rcx = f.u64(528);
  r.rdx = f.u64(536);
  r.rbp = f.u64(544);
  r.rsi = f.u64(552);
  r.rdi = f.u64(560);
  r.rsp = f.u64(568);
  r.r8 = f.u64(576);
  r.r9 = f.u64(584);
  r.r10 = f.u64(592);
  r.r11 = f.u64(600);
  r.r12 = f.u64(608);
  r.r13 = f.u64(616);
  r.r14 = f.u64(624);
  r.r15 = f.u64(632);
  r.rip = f.u64(640);
  r.rflags = f.u64(648);
  r.cr0 = f.u64(656);
  r.cr2 = f.u64(664);
  r.cr3 = f.u64(672);
  r.cr4 = f.u64(680);
  // Selectors (u32) from 736 in the order cs, ds, es, fs, gs, ss.
  r.cs = f.u32(736);
  r.ds = f.u32(740);
  r.es = f.u32(744);
  r.fs = f.u32(748);
  r.gs = f.u32(752);
  r.ss = f.u32(756);
  // Bases (u64) from 808 in the same order.
  r.fs_base = f.u64(808 + 3 * 8);
  r.gs_base = f.u64(808 + 4 * 8);
  r.gs_base_user = f.u64(944);  // shadow_gs
  r.efer = f.u64(992);
  return r;
}

}  // namespace

Expected<VcpuRegs> decode_pv_vcpu(std::uint32_t vcpu_id, Bytes ctx, std::uint64_t file_offset) {
  const Fields f(ctx, ByteOrder::kLittle, file_offset);
  if (ctx.size() == kPvCtx64) return pv64(vcpu_id, f);
  if (ctx.size() == kPvCtx32) return pv32(vcpu_id, f);
  return make_error(ErrorCode::kMalformed, file_offset,
                    "vcpu " + std::to_string(vcpu_id) + ": vcpu_guest_context of " + hex(ctx.size()) +
                        " octets (want 0x1430 for a 64-bit guest or 0xaf0 for a 32-bit one)");
}

Expected<std::vector<VcpuRegs>> decode_hvm_cpus(Bytes blob, std::uint64_t file_offset) {
  const Fields f(blob, ByteOrder::kLittle, file_offset);
  std::map<std::uint32_t, VcpuRegs> cpus;
  std::size_t off = 0;
  while (true) {
    if (!f.fits(off, 8)) {
      return make_error(ErrorCode::kMalformed, file_offset + off,
                        "HVM context: descriptor chain ends without END at blob offset " + hex(off));
    }
    const std::uint16_t code = f.u16(off);
    const std::uint16_t instance = f.u16(off + 2);
    const std::uint32_t len = f.u32(off + 4);
    if (code == 0) break;
    if (!f.fits(off + 8, len)) {
      return make_error(ErrorCode::kMalformed, file_offset + off,
                        "HVM context: entry [" + hex(off + 8) + ", " + hex(off + 8 + std::uint64_t{len}) +
                            ") runs past the blob's end " + hex(blob.size()));
    }
    if (code == 2) {
      if (len < 1016) {
        return make_error(ErrorCode::kMalformed, file_offset + off,
                          "HVM context: CPU record of instance " + std::to_string(instance) + " has " + hex(len) +
                              " octets (want at least 0x3f8)");
      }
      cpus[instance] = hvm_cpu(instance, f.sub(off + 8, len));
    }
    off += 8 + std::size_t{len};
  }
  std::vector<VcpuRegs> out;
  for (auto& [id, r] : cpus) out.push_back(r);
  return out;
}

Expected<std::vector<VcpuRegs>> read_dir_vcpus(const std::string& dir) {
  namespace fs = std::filesystem;
  auto read_file = [](const fs::path& p, std::vector<std::byte>& out) {
    std::ifstream f(p, std::ios::binary);
    if (!f) return false;
    const std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    out.resize(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return true;
  };
  std::vector<std::byte> blob;
  std::vector<VcpuRegs> out;
  if (read_file(fs::path(dir) / "hvm-context.bin", blob)) {
    auto cpus = decode_hvm_cpus(blob, 0);
    if (!cpus) return std::move(cpus).error().with_context(dir + "/hvm-context.bin");
    return std::move(*cpus);
  }
  constexpr std::uint32_t kMaxVcpus = 4096;  // project cap on vcpu ids
  for (std::uint32_t id = 0; id < kMaxVcpus; ++id) {
    const std::string name = "vcpu" + std::to_string(id) + "-basic.bin";
    if (!read_file(fs::path(dir) / name, blob)) continue;
    auto r = decode_pv_vcpu(id, blob, 0);
    if (!r) return std::move(r).error().with_context(dir + "/" + name);
    out.push_back(*r);
  }
  return out;
}

Expected<PagingRoot> paging_root(const VcpuRegs& r, std::uint64_t max_pfn, bool user) {
  PagingRoot root;
  root.max_pfn = max_pfn;
  if (!r.hvm) {
    root.mode = r.width == 8 ? PagingMode::kLong4 : PagingMode::kPae;
    root.cr3 = r.cr3;
    if (user) {
      if (r.width != 8 || (r.user_cr3 & 1) == 0) {
        return make_error(ErrorCode::kUsage, 0, "vcpu " + std::to_string(r.id) + " has no user page table (ctrlreg[1])");
      }
      root.cr3 = r.user_cr3 & ~std::uint64_t{0xFFF};
    }
    root.nxe = true;
    return root;
  }
  if (user) return make_error(ErrorCode::kUsage, 0, "--user applies to 64-bit PV guests only");
  root.cr3 = r.cr3;
  root.pse = (r.cr4 & (1u << 4)) != 0;
  root.nxe = (r.efer & (1u << 11)) != 0;
  const bool pg = (r.cr0 & (std::uint64_t{1} << 31)) != 0;
  const bool pae = (r.cr4 & (1u << 5)) != 0;
  const bool lma = (r.efer & (1u << 10)) != 0;
  const bool la57 = (r.cr4 & (1u << 12)) != 0;
  if (!pg) {
    root.mode = PagingMode::kNone;
  } else if (!pae) {
    root.mode = PagingMode::kTwoLevel;
  } else if (!lma) {
    root.mode = PagingMode::kPae;
  } else {
    root.mode = la57 ? PagingMode::kLong5 : PagingMode::kLong4;
  }
  return root;
}

}  // namespace xenstream::memview
