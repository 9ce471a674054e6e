// A vCPU's saved registers, decoded from what a save image carries
// (spec/memview.md, "vCPU state"):
//   PV   X86_PV_VCPU_BASIC: a vcpu_guest_context of the guest's width
//        (5168 octets for 64-bit guests, 2800 for 32-bit; spec/libxc.md)
//   HVM  the CPU record (typecode 2) of HVM_CONTEXT (spec/hvm-context.md §A)
// and the paging root a page walk starts from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/source.h>
#include "tools/memview/page_walk.h"

namespace xenstream::memview {

struct VcpuRegs {
  std::uint32_t id = 0;
  bool hvm = false;
  unsigned width = 8;  // 8 (64-bit) or 4 (32-bit PV guest)
  std::uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rbp = 0, rsp = 0;
  std::uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  std::uint64_t rip = 0, rflags = 0;
  std::uint64_t cs = 0, ss = 0, ds = 0, es = 0, fs = 0, gs = 0;
  std::uint64_t fs_base = 0, gs_base = 0, gs_base_user = 0;  // PV: gs_base = kernel's
  std::uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, efer = 0;
  // PV only: the guest's user-mode L4 (ctrlreg[1] bit 0), as cr3 form.
  std::uint64_t user_cr3 = 0;
};

// PV: `ctx` is the vcpu_guest_context (the record body after its 8-octet
// {vcpu_id, reserved} header), little-endian as Xen writes it on x86.
//   kMalformed: a size other than 5168 or 2800
Expected<VcpuRegs> decode_pv_vcpu(std::uint32_t vcpu_id, Bytes ctx, std::uint64_t file_offset);

// HVM: the CPU records of an HVM_CONTEXT blob, in instance order. Accepts the
// 1032, 1024 and 1016 octet layouts (registers sit at the same offsets).
//   kMalformed: the descriptor chain is broken (offset inside the blob)
Expected<std::vector<VcpuRegs>> decode_hvm_cpus(Bytes blob, std::uint64_t file_offset);

// The vCPUs of a restored domain directory (tools/restore/README.md):
// hvm-context.bin's CPU records when present, else vcpu<N>-basic.bin files.
// An empty vector when DIR holds neither.
//   kMalformed: a file that does not decode (the message names it)
Expected<std::vector<VcpuRegs>> read_dir_vcpus(const std::string& dir);

// Where a walk for this vCPU starts. PV: 64-bit guests use 4-level paging
// from cr3 (`user` selects the user L4 of ctrlreg[1]); 32-bit guests PAE
// (pt_levels 3). HVM: cr0.PG, cr4.PAE, EFER.LMA and cr4.LA57 choose the mode.
//   kUsage: `user` asked for a vCPU without a user L4
Expected<PagingRoot> paging_root(const VcpuRegs& r, std::uint64_t max_pfn, bool user = false);

}  // namespace xenstream::memview
