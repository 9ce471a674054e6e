#include "tools/convert/legacy_format.h"

namespace xenstream::convert::legacy {

std::string_view chunk_name(std::int32_t id) {
  if (id > 0) return "page batch";
  switch (static_cast<ChunkId>(id)) {
    case ChunkId::kEnd: return "end of body";
    case ChunkId::kEnableVerifyMode: return "ENABLE_VERIFY_MODE";
    case ChunkId::kVcpuInfo: return "VCPU_INFO";
    case ChunkId::kHvmIdentPt: return "HVM_IDENT_PT";
    case ChunkId::kHvmVm86Tss: return "HVM_VM86_TSS";
    case ChunkId::kTmem: return "TMEM";
    case ChunkId::kTmemExtra: return "TMEM_EXTRA";
    case ChunkId::kTscInfo: return "TSC_INFO";
    case ChunkId::kHvmConsolePfn: return "HVM_CONSOLE_PFN";
    case ChunkId::kLastCheckpoint: return "LAST_CHECKPOINT";
    case ChunkId::kHvmAcpiIoportsLocation: return "HVM_ACPI_IOPORTS_LOCATION";
    case ChunkId::kHvmViridian: return "HVM_VIRIDIAN";
    case ChunkId::kCompressedData: return "COMPRESSED_DATA";
    case ChunkId::kEnableCompression: return "ENABLE_COMPRESSION";
    case ChunkId::kHvmGenerationIdAddr: return "HVM_GENERATION_ID_ADDR";
    case ChunkId::kHvmPagingRingPfn: return "HVM_PAGING_RING_PFN";
    case ChunkId::kHvmMonitorRingPfn: return "HVM_MONITOR_RING_PFN";
    case ChunkId::kHvmSharingRingPfn: return "HVM_SHARING_RING_PFN";
    case ChunkId::kToolstack: return "TOOLSTACK";
    case ChunkId::kHvmIoreqServerPfn: return "HVM_IOREQ_SERVER_PFN";
    case ChunkId::kHvmNrIoreqServerPages: return "HVM_NR_IOREQ_SERVER_PAGES";
  }
  return "unknown";
}

int hvm_param_of_chunk(std::int32_t id) {
  switch (static_cast<ChunkId>(id)) {
    case ChunkId::kHvmIdentPt: return 12;
    case ChunkId::kHvmVm86Tss: return 15;
    case ChunkId::kHvmConsolePfn: return 17;
    case ChunkId::kHvmAcpiIoportsLocation: return 19;
    case ChunkId::kHvmViridian: return 9;
    case ChunkId::kHvmGenerationIdAddr: return 34;
    case ChunkId::kHvmPagingRingPfn: return 27;
    case ChunkId::kHvmMonitorRingPfn: return 28;
    case ChunkId::kHvmSharingRingPfn: return 29;
    case ChunkId::kHvmIoreqServerPfn: return 32;
    case ChunkId::kHvmNrIoreqServerPages: return 33;
    default: return -1;
  }
}

}  // namespace xenstream::convert::legacy
