// The restored domain's state as DirectoryBackend keeps it, and its
// rendering as manifest.json (tools/restore/README.md, "manifest.json").
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "tools/restore/backend.h"
#include "tools/restore/page_map.h"

namespace xenstream::restore {

inline constexpr int kManifestVersion = 1;
inline constexpr char kManifestName[] = "manifest.json";
inline constexpr char kMemoryName[] = "memory.raw";

// Everything but the pages; blobs are in files, this records their names and
// sizes. Copied at every commit, so it stays small.
struct DomainState {
  std::set<std::string> files;  // every file in the directory but the manifest
  std::optional<TscInfoView> tsc;
  std::map<std::uint64_t, std::uint64_t> hvm_params;
  std::optional<X86PvInfoView> pv_info;
  struct P2m {
    std::uint32_t start_pfn = 0;
    std::uint32_t end_pfn = 0;
    std::uint64_t frames = 0;
    std::uint64_t records = 0;
  };
  std::optional<P2m> p2m;
  // Per vCPU id: the size of each X86_PV_VCPU_* blob received.
  std::map<std::uint32_t, std::array<std::optional<std::uint64_t>, 4>> vcpus;
  std::optional<std::uint64_t> hvm_context_size;
  std::optional<std::set<std::uint32_t>> hvm_context_vcpus;  // CPU instances
  std::optional<std::uint64_t> shared_info_size;
  std::array<std::optional<std::uint64_t>, 2> policies;  // cpuid, msr sizes
  bool static_data_end = false;
  struct Emulator {
    std::uint32_t id = 0;
    std::uint32_t index = 0;
    std::uint64_t size = 0;
    std::uint64_t records = 0;
  };
  std::optional<Emulator> emulator;
  std::map<std::string, std::string> xenstore;
  std::optional<std::pair<std::uint32_t, std::uint32_t>> xenstore_ids;
  std::uint64_t xenstore_records = 0;
};

// File names of the layout.
std::string vcpu_file_name(std::uint32_t vcpu_id, VcpuRecord kind);
std::string emulator_file_name(std::uint32_t domid);  // "qemu-resume.<domid>"
inline constexpr char kHvmContextName[] = "hvm-context.bin";
inline constexpr char kSharedInfoName[] = "shared-info.bin";
inline constexpr char kP2mFramesName[] = "p2m-frames.bin";
inline constexpr char kXenstoreName[] = "xenstore.json";
inline constexpr char kEmulatorLogName[] = "emulator.log";
std::string policy_file_name(CpuPolicy kind);  // cpuid-policy.bin, msr-policy.bin
// The container's domain configuration: xl-config.json, xl-config.cfg or
// libvirt.xml; empty when the container carries none.
std::string config_file_name(const ContainerInfo& c);

// CPU instances in an HVM context blob (descriptors {u16 typecode, u16
// instance, u32 length}, typecode 2 = CPU, up to END). nullopt when the
// descriptor chain does not walk cleanly.
std::optional<std::set<std::uint32_t>> hvm_context_cpus(Bytes blob);

struct ManifestInput {
  const DomainInfo* info = nullptr;
  const DomainState* state = nullptr;
  const PageMap* pages = nullptr;
  std::uint64_t checkpoints = 0;
  const StreamFacts* facts = nullptr;
  std::string status;  // "in-progress", "complete", "failover"
  const FinishInfo* finish = nullptr;  // at the end only
};
nlohmann::json build_manifest(const ManifestInput& in);

nlohmann::json xenstore_json(const DomainState& state);

// Serialises JSON for a file or a terminal. Strings from the stream (xenstore
// keys, names) need not be UTF-8: invalid octets become U+FFFD instead of
// throwing (indent -1 = one line).
std::string json_text(const nlohmann::json& j, int indent = -1);

}  // namespace xenstream::restore
