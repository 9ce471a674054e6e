// ELF64 core writer: see elfcore.h.
#include "tools/elfcore/elfcore.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include <xenstream/libstream/sink.h>

namespace xenstream::elfcore {
namespace {

Error usage(std::string m) { return make_error(ErrorCode::kUsage, 0, std::move(m)); }
Error io(std::string m) { return make_error(ErrorCode::kIo, 0, std::move(m)); }

std::vector<PfnRun> normalise(std::vector<PfnRun> runs) {
  std::sort(runs.begin(), runs.end(), [](const PfnRun& a, const PfnRun& b) { return a.begin < b.begin; });
  std::vector<PfnRun> out;
  for (const auto& r : runs) {
    if (r.begin >= r.end) continue;
    if (!out.empty() && r.begin <= out.back().end) {
      out.back().end = std::max(out.back().end, r.end);
    } else {
      out.push_back(r);
    }
  }
  return out;
}

Expected<void> pwrite_all(int fd, const void* data, std::size_t n, std::uint64_t off, const std::string& name) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return io(name + ": write at 0x" + hex(off) + " failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
  return {};
}

// Copies [src_off, src_off + n) of `in` to `out` at `dst_off`; the part
// beyond the end of `in` is left as a hole (reads as zeros).
Expected<void> copy_range(int in, std::uint64_t in_size, std::uint64_t src_off, int out, std::uint64_t dst_off,
                          std::uint64_t n, const std::string& name) {
  std::uint64_t avail = src_off >= in_size ? 0 : std::min(n, in_size - src_off);
  loff_t so = static_cast<loff_t>(src_off), doff = static_cast<loff_t>(dst_off);
  bool fallback = false;
  while (avail > 0 && !fallback) {
    const ssize_t c = ::copy_file_range(in, &so, out, &doff, avail, 0);
    if (c < 0) {
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL) {
        fallback = true;
        break;
      }
      return io(name + ": copying memory.raw failed: " + std::strerror(errno));
    }
    if (c == 0) break;  // memory.raw shrank under us: the rest stays zero
    avail -= static_cast<std::uint64_t>(c);
  }
  if (fallback) {
    std::vector<char> buf(1 << 20);
    while (avail > 0) {
      const ssize_t r = ::pread(in, buf.data(), std::min<std::uint64_t>(avail, buf.size()), so);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return io(name + ": reading memory.raw failed: " + std::strerror(errno));
      if (r == 0) break;
      XS_TRY(pwrite_all(out, buf.data(), static_cast<std::size_t>(r), static_cast<std::uint64_t>(doff), name));
      so += r;
      doff += r;
      avail -= static_cast<std::uint64_t>(r);
    }
  }
  return {};
}

void put(std::vector<unsigned char>& b, std::size_t at, std::uint64_t v, unsigned size) {
  for (unsigned i = 0; i < size; ++i) b[at + i] = static_cast<unsigned char>(v >> (8 * i));
}

// One note: Elf64_Nhdr {namesz, descsz, type}, the name with its NUL padded
// to 4, the descriptor padded to 4.
void append_note(std::vector<unsigned char>& out, std::string_view name, std::uint32_t type,
                 const std::vector<unsigned char>& desc) {
  const std::size_t at = out.size();
  const std::size_t namesz = name.size() + 1;
  const std::size_t name_pad = (namesz + 3) / 4 * 4;
  const std::size_t desc_pad = (desc.size() + 3) / 4 * 4;
  out.resize(at + 12 + name_pad + desc_pad, 0);
  put(out, at, namesz, 4);
  put(out, at + 4, desc.size(), 4);
  put(out, at + 8, type, 4);
  std::memcpy(out.data() + at + 12, name.data(), name.size());
  std::memcpy(out.data() + at + 12 + name_pad, desc.data(), desc.size());
}

// x86-64 elf_prstatus: pr_pid at 32, pr_reg (user_regs_struct, 27 u64) at
// 112, pr_fpvalid at 328.
std::vector<unsigned char> prstatus(const memview::VcpuRegs& r) {
  std::vector<unsigned char> d(kPrstatusSize, 0);
  put(d, 32, r.id + 1, 4);
  const std::uint64_t regs[27] = {r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9,
                                  r.r8,  r.rax, r.rcx, r.rdx, r.rsi, r.rdi, 0 /* orig_rax */,
                                  r.rip, r.cs,  r.rflags, r.rsp, r.ss, r.fs_base, r.gs_base,
                                  r.ds,  r.es,  r.fs,  r.gs};
  for (int i = 0; i < 27; ++i) put(d, 112 + 8 * i, regs[i], 8);
  return d;
}

// QEMU's CPU-state note, version 1: u32 version, u32 size, rax rbx rcx rdx
// rsi rdi rsp rbp r8..r15 rip rflags, ten segments {u32 selector, limit,
// flags, pad; u64 base} (cs ds es fs gs ss ldt tr gdt idt), cr0..cr4,
// kernel_gs_base (the base swapgs brings in: PV gs_base_user, HVM shadow_gs).
std::vector<unsigned char> qemu_cpu_state(const memview::VcpuRegs& r) {
  std::vector<unsigned char> d(kQemuCpuStateSize, 0);
  put(d, 0, 1, 4);
  put(d, 4, kQemuCpuStateSize, 4);
  const std::uint64_t gprs[18] = {r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rsp, r.rbp, r.r8,
                                  r.r9,  r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags};
  for (int i = 0; i < 18; ++i) put(d, 8 + 8 * i, gprs[i], 8);
  const std::size_t seg = 8 + 18 * 8;
  const std::uint64_t sels[6] = {r.cs, r.ds, r.es, r.fs, r.gs, r.ss};
  for (int i = 0; i < 6; ++i) put(d, seg + 24 * i, sels[i], 4);
  put(d, seg + 24 * 3 + 16, r.fs_base, 8);
  put(d, seg + 24 * 4 + 16, r.gs_base, 8);
  const std::size_t cr = seg + 24 * 10;
  const std::uint64_t crs[5] = {r.cr0, 0, r.cr2, r.cr3, r.cr4};
  for (int i = 0; i < 5; ++i) put(d, cr + 8 * i, crs[i], 8);
  put(d, cr + 40, r.gs_base_user, 8);
  return d;
}

}  // namespace

std::vector<unsigned char> vcpu_notes(const std::vector<memview::VcpuRegs>& vcpus) {
  std::vector<unsigned char> out;
  for (const auto& r : vcpus) append_note(out, "CORE", NT_PRSTATUS, prstatus(r));
  for (const auto& r : vcpus) append_note(out, "QEMU", 0, qemu_cpu_state(r));
  return out;
}

Expected<std::vector<PfnRun>> runs_from_manifest(const std::string& dir) {
  std::ifstream in(dir + "/manifest.json");
  if (!in) return usage(dir + ": no manifest.json (not a restored domain directory)");
  std::vector<PfnRun> runs;
  try {
    const auto m = nlohmann::json::parse(in);
    for (const auto& r : m.at("memory").at("pfn_ranges")) {
      runs.push_back({r.at(0).get<std::uint64_t>(), r.at(1).get<std::uint64_t>()});
    }
  } catch (const nlohmann::json::exception& e) {
    return usage(dir + "/manifest.json: " + e.what());
  }
  return normalise(std::move(runs));
}

Expected<std::vector<PfnRun>> runs_from_sparse_file(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io(std::string("memory.raw: stat failed: ") + std::strerror(errno));
  const auto size = static_cast<std::uint64_t>(st.st_size);
  std::vector<PfnRun> runs;
  std::uint64_t pos = 0;
  while (pos < size) {
    const off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      if (errno == EINVAL) {      // no hole reporting: everything is data
        runs.push_back({pos / kPageSize, (size + kPageSize - 1) / kPageSize});
        break;
      }
      return io(std::string("memory.raw: SEEK_DATA failed: ") + std::strerror(errno));
    }
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size);
    const auto b = static_cast<std::uint64_t>(data) / kPageSize;
    const auto e = (std::min<std::uint64_t>(static_cast<std::uint64_t>(hole), size) + kPageSize - 1) / kPageSize;
    runs.push_back({b, e});
    pos = static_cast<std::uint64_t>(hole);
  }
  return normalise(std::move(runs));
}

Expected<ElfCoreSummary> write_elf_core(int memory_fd, const std::vector<PfnRun>& in_runs,
                                        const std::string& out_path, bool durable,
                                        const std::vector<memview::VcpuRegs>& vcpus) {
  const std::vector<PfnRun> runs = normalise(in_runs);
  struct stat st {};
  if (::fstat(memory_fd, &st) != 0) return io(std::string("memory.raw: stat failed: ") + std::strerror(errno));
  const auto mem_size = static_cast<std::uint64_t>(st.st_size);
  constexpr std::uint64_t kMaxPfn = (std::uint64_t{1} << 52) - 1;
  for (const auto& r : runs) {
    if (r.end > kMaxPfn) return usage("pfn run [0x" + hex(r.begin) + ", 0x" + hex(r.end) + ") is beyond 2^52");
  }
  const std::vector<unsigned char> notes = vcpu_notes(vcpus);
  const std::uint64_t nnote = notes.empty() ? 0 : 1;
  const std::uint64_t phnum = runs.size() + nnote;
  const bool xnum = phnum >= PN_XNUM;
  const std::uint64_t ph_off = sizeof(Elf64_Ehdr);
  const std::uint64_t sh_off = ph_off + phnum * sizeof(Elf64_Phdr);
  const std::uint64_t note_off = sh_off + (xnum ? sizeof(Elf64_Shdr) : 0);
  const std::uint64_t headers_end = note_off + notes.size();
  std::uint64_t data_off = (headers_end + kPageSize - 1) / kPageSize * kPageSize;

  std::vector<unsigned char> head(headers_end, 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
  eh.e_type = ET_CORE;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_phoff = phnum > 0 ? ph_off : 0;
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<Elf64_Half>(xnum ? PN_XNUM : phnum);
  eh.e_shentsize = sizeof(Elf64_Shdr);
  if (xnum) {
    eh.e_shoff = sh_off;
    eh.e_shnum = 1;
    Elf64_Shdr sh{};
    sh.sh_info = static_cast<Elf64_Word>(phnum);
    std::memcpy(head.data() + sh_off, &sh, sizeof sh);
  }
  std::memcpy(head.data(), &eh, sizeof eh);

  if (nnote != 0) {
    Elf64_Phdr ph{};
    ph.p_type = PT_NOTE;
    ph.p_offset = note_off;
    ph.p_filesz = notes.size();
    ph.p_memsz = notes.size();
    ph.p_align = 4;
    std::memcpy(head.data() + ph_off, &ph, sizeof ph);
    std::memcpy(head.data() + note_off, notes.data(), notes.size());
  }

  ElfCoreSummary sum;
  sum.segments = runs.size();
  sum.vcpus = vcpus.size();
  std::uint64_t off = data_off;
  for (std::uint64_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    Elf64_Phdr ph{};
    ph.p_type = PT_LOAD;
    ph.p_flags = PF_R | PF_W | PF_X;
    ph.p_offset = off;
    ph.p_vaddr = r.begin * kPageSize;
    ph.p_paddr = r.begin * kPageSize;
    ph.p_filesz = (r.end - r.begin) * kPageSize;
    ph.p_memsz = ph.p_filesz;
    ph.p_align = kPageSize;
    std::memcpy(head.data() + ph_off + (i + nnote) * sizeof(Elf64_Phdr), &ph, sizeof ph);
    off += ph.p_filesz;
    sum.pages += r.end - r.begin;
  }
  sum.bytes = runs.empty() ? headers_end : off;

  auto file = AtomicFile::create(out_path, 0644);
  if (!file) return std::move(file).error();
  const int fd = (*file)->fd();
  XS_TRY(pwrite_all(fd, head.data(), head.size(), 0, out_path));
  if (::ftruncate(fd, static_cast<off_t>(sum.bytes)) != 0) {
    return io(out_path + ": cannot size the core file: " + std::strerror(errno));
  }
  off = data_off;
  for (const auto& r : runs) {
    const std::uint64_t n = (r.end - r.begin) * kPageSize;
    XS_TRY(copy_range(memory_fd, mem_size, r.begin * kPageSize, fd, off, n, out_path));
    off += n;
  }
  XS_TRY((*file)->commit(durable));
  return sum;
}

Expected<ElfCoreSummary> write_elf_core(const std::string& dir, const std::string& out_path,
                                        const ElfCoreOptions& opts) {
  struct stat st {};
  if (::stat((dir + "/.xenstream").c_str(), &st) == 0) {
    return usage(dir + ": holds .xenstream/ (an unfinished restore); run `streamrestore --recover " + dir +
                 "` first");
  }
  const int fd = ::open((dir + "/memory.raw").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return usage(dir + "/memory.raw: " + std::strerror(errno));
  Expected<std::vector<PfnRun>> runs =
      opts.from_sparse_file ? runs_from_sparse_file(fd) : runs_from_manifest(dir);
  auto vcpus = memview::read_dir_vcpus(dir);
  if (!vcpus) {
    ::close(fd);
    return std::move(vcpus).error();
  }
  Expected<ElfCoreSummary> r = runs ? write_elf_core(fd, *runs, out_path, opts.durable, *vcpus)
                                    : Expected<ElfCoreSummary>(std::move(runs).error());
  ::close(fd);
  return r;
}

}  // namespace xenstream::elfcore
