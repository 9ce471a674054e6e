// Writes a restored domain's memory (tools/restore/README.md, "The restored
// directory") as an ELF64 core file that readelf, gdb and memory-forensics
// tools open, in the layout of QEMU's dump-guest-memory (spec/elf-core.md):
// ET_CORE, EM_X86_64, little-endian; when the domain has vCPU state, a
// PT_NOTE first with one NT_PRSTATUS ("CORE") note per vCPU (gdb: one thread
// per vCPU, pid = vcpu id + 1) followed by one "QEMU" CPU-state note per vCPU
// (control registers for crash and friends); then one PT_LOAD per run of
// present pfns with the guest-physical address in p_paddr and p_vaddr
// (p_filesz == p_memsz == run length), segment data page-aligned in the file
// and copied from memory.raw with copy_file_range (so holes inside a run
// stay cheap where the file system allows). 65535 or more program headers
// use the PN_XNUM convention (e_phnum 0xFFFF, the real count in section
// header 0's sh_info).
//
// The output appears under its name only when complete (AtomicFile).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include "tools/memview/vcpu_state.h"

namespace xenstream::elfcore {

inline constexpr std::uint64_t kPageSize = 4096;

// Half-open run [begin, end) of present pfns.
struct PfnRun {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  bool operator==(const PfnRun&) const = default;
};

// The manifest's memory.pfn_ranges (sorted, merged).
//   kUsage: DIR/manifest.json missing or without memory.pfn_ranges
Expected<std::vector<PfnRun>> runs_from_manifest(const std::string& dir);

// Runs of pages of `fd` (a sparse memory.raw) holding data, by SEEK_DATA /
// SEEK_HOLE, rounded out to whole pages. A file system that does not report
// holes makes the whole file one run.
Expected<std::vector<PfnRun>> runs_from_sparse_file(int fd);

struct ElfCoreOptions {
  // Where the present pfns come from: the manifest (default) or the holes of
  // memory.raw (for a directory whose manifest lacks pfn_ranges, or when
  // all-zero pages that were never written should be left out).
  bool from_sparse_file = false;
  bool durable = false;  // fsync before the rename
};

struct ElfCoreSummary {
  std::uint64_t segments = 0;  // PT_LOADs
  std::uint64_t vcpus = 0;     // NT_PRSTATUS notes
  std::uint64_t pages = 0;
  std::uint64_t bytes = 0;  // size of the core file
};

// Writes DIR/memory.raw as an ELF core to `out_path` (atomically).
//   kUsage: DIR is not a restored domain (no memory.raw / manifest)
//   kIo:    reading memory.raw or writing the core failed
Expected<ElfCoreSummary> write_elf_core(const std::string& dir, const std::string& out_path,
                                        const ElfCoreOptions& opts = {});

// Same, for explicit runs, an open memory.raw descriptor and the vCPUs whose
// registers go into the notes (none: no PT_NOTE).
Expected<ElfCoreSummary> write_elf_core(int memory_fd, const std::vector<PfnRun>& runs,
                                        const std::string& out_path, bool durable = false,
                                        const std::vector<memview::VcpuRegs>& vcpus = {});

// The PT_NOTE contents for `vcpus`: NT_PRSTATUS notes, then QEMU notes.
std::vector<unsigned char> vcpu_notes(const std::vector<memview::VcpuRegs>& vcpus);

// Size of x86-64 elf_prstatus and of QEMU's CPU-state note (version 1 with
// kernel_gs_base, as QEMU 7.2 writes it).
inline constexpr std::size_t kPrstatusSize = 336;
inline constexpr std::size_t kQemuCpuStateSize = 440;

}  // namespace xenstream::elfcore
