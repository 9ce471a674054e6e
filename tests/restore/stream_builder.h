// Builds small v2 streams for the restore tests with libstream's
// RecordWriter, together with a model of the domain each commit point must
// leave behind (memory by pfn, types, blobs), so that tests can compare a
// restored directory with exactly what should be there.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/source.h>

namespace xenstream::restore::testing {

// Deterministic page contents: never all zero for seed != 0; all zero for
// seed 0.
std::vector<std::byte> page_bytes(std::uint64_t pfn, std::uint32_t seed);

// A page of zeros but for its last octet.
inline constexpr std::uint32_t kTailOnlySeed = 0xffffffffu;

struct PageSpec {
  std::uint64_t pfn = 0;
  std::uint32_t seed = 1;  // 0: an all-zero page; kTailOnlySeed
  unsigned type = 0;       // PFINFO nibble
};

// The records of one part of a stream: the initial copy (part 0), or one
// checkpoint's worth of dirty pages and state.
struct PartSpec {
  std::vector<PageSpec> pages;
  std::uint32_t batch = 3;  // entries per PAGE_DATA record
  std::optional<std::vector<std::byte>> hvm_context;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> hvm_params;
  std::optional<std::uint64_t> tsc_nsec;  // an X86_TSC_INFO with this nsec
  // PV: vcpu id -> BASIC blob.
  std::map<std::uint32_t, std::vector<std::byte>> vcpu_basic;
  std::optional<std::vector<std::byte>> shared_info;
  // libxl records of this part (HVM).
  std::vector<std::pair<std::string, std::string>> xenstore;
  std::optional<std::vector<std::byte>> emulator_context;
  // Extra records appended at the end of the libxc part: (type, body).
  std::vector<std::pair<std::uint32_t, std::vector<std::byte>>> extra_libxc;
};

struct StreamSpec {
  bool hvm = true;
  bool libxl = true;         // false: a bare libxc image
  bool checkpointed = false; // every part after the first is a checkpoint
  bool end = true;           // finish with END (libxc END, then libxl END)
  bool colo = false;         // CHECKPOINT_STATE(NEW) after each CHECKPOINT_END
  bool xl_container = false; // wrap in an xl save header with a JSON config
  std::string xl_config = "{\"c_info\":{\"name\":\"guest\"}}";
  std::uint32_t xen_major = 4;
  std::uint32_t xen_minor = 17;
  std::vector<PartSpec> parts;
};

// What the domain looks like at a commit point.
struct DomainModel {
  std::map<std::uint64_t, std::vector<std::byte>> memory;  // populated pfns with data
  std::map<std::uint64_t, unsigned> types;                 // last type of every pfn seen
  std::optional<std::vector<std::byte>> hvm_context;
  std::map<std::uint64_t, std::uint64_t> hvm_params;
  std::optional<std::uint64_t> tsc_nsec;
  std::map<std::uint32_t, std::vector<std::byte>> vcpu_basic;
  std::optional<std::vector<std::byte>> shared_info;
  std::map<std::string, std::string> xenstore;
  std::optional<std::vector<std::byte>> emulator_context;
  std::uint64_t checkpoints = 0;
};

struct BuiltStream {
  std::vector<std::byte> bytes;
  // Offsets just past each commit point's record (CHECKPOINT_END, or the
  // libxc CHECKPOINT of a bare stream), and the model after it.
  std::vector<std::uint64_t> commit_ends;
  std::vector<DomainModel> models;  // models[i] after commit i+1
  // The model of a complete plain stream (or of the last checkpoint).
  DomainModel final_model;
  std::uint64_t records = 0;
};

BuiltStream build_stream(const StreamSpec& spec);

// A small valid HVM context blob: HEADER, one CPU record per vCPU, END.
// A QEMU device-state blob the rules accept, different for each (seed, size).
std::vector<std::byte> qemu_state_blob(std::uint8_t seed, std::size_t size);
std::vector<std::byte> hvm_context_blob(std::uint32_t vcpus, std::uint8_t fill);

// A typical small checkpointed HVM spec: `checkpoints` checkpoints over a
// handful of pages, each overwriting part of the previous state.
StreamSpec small_checkpointed_hvm(unsigned checkpoints);

// Reads a whole file; empty optional when it does not exist.
std::optional<std::vector<std::byte>> read_file(const std::string& path);
void write_file(const std::string& path, Bytes data);

// Checks that DIR holds exactly `model` (memory.raw byte for byte, the
// blob files, manifest fields). Returns "" when it does, else what differs.
std::string compare_dir(const std::string& dir, const DomainModel& model, bool hvm);

// A fresh directory under the test temp dir; removed by remove_tree().
std::string temp_dir(const std::string& tag);
// The same on a memory file system (/dev/shm) when there is one: for tests
// that restore thousands of times and test logic, not the disk.
std::string fast_temp_dir(const std::string& tag);
void remove_tree(const std::string& path);
// Names in a directory (not recursive), sorted; hidden names included.
std::vector<std::string> list_dir(const std::string& path);

}  // namespace xenstream::restore::testing

#include "tools/restore/directory_backend.h"
#include "tools/restore/restore_driver.h"

namespace xenstream::restore::testing {

// Restores `data` into `dir` in this process (MemorySource, auto-detected
// container), the way streamrestore does.
RestoreReport restore_bytes(Bytes data, const std::string& dir, RestoreOptions options = {},
                            DirectoryOptions dir_options = {});

// The same through a pipe (FdSource), the way `streamrestore -` reads it: a
// writer thread feeds `data` in pieces of `piece` octets (0: all at once).
// `bypassed`, if given, receives the octets the source moved without a copy
// in user space (Source::bypassed()).
RestoreReport restore_pipe(Bytes data, const std::string& dir, RestoreOptions options = {},
                           DirectoryOptions dir_options = {}, std::size_t piece = 0,
                           std::uint64_t* bypassed = nullptr);

}  // namespace xenstream::restore::testing
