// streamsave: packs a restored domain directory (tools/restore/README.md,
// "The restored directory") back into a v2 migration stream.
//
// The stream is laid out the way Xen's saver and libxl write it
// (spec/libxc.md "What the saver writes", spec/libxl.md): optional xl
// header carrying the domain config, libxl header and LIBXC_CONTEXT, the
// libxc image and domain headers, static data (X86_PV_INFO, CPU policies,
// STATIC_DATA_END, X86_PV_P2M_FRAMES), PAGE_DATA, the end-of-checkpoint
// records (X86_TSC_INFO, HVM_CONTEXT + HVM_PARAMS or SHARED_INFO + vCPU
// records), END, then the libxl emulator records and libxl END.
//
// Page contents go from a read-only mapping of memory.raw to the sink
// through RecordWriter's vectored writes. Pfns outside the manifest's
// `memory.pfn_ranges` are not sent (holes); pfns of type xtab or broken in
// `memory.typed_ranges` are sent as data-less entries.
//
// Checkpointed mode (save_checkpointed): the first directory in full, then
// for each further directory only the pfns whose contents or type differ
// from the previous directory (and pfns newly present), followed by the
// end-of-checkpoint records, CHECKPOINT, the emulator records that changed
// and, with the libxl layer, CHECKPOINT_END. Like a Remus primary, the
// stream carries no END: a restorer fails over to the last checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/sink.h>

namespace xenstream::save {

// What wraps the libxc image. kAuto reproduces what the directory was
// restored from (manifest `source.container` when DIR holds that
// container's config, and `source.payload`), except that a checkpointed
// stream never gets a save-file header (Xen refuses CHECKPOINT there).
enum class Layout : std::uint8_t {
  kAuto,
  kXl,       // xl save header + libxl stream
  kLibvirt,  // libvirt-xml header + libxl stream
  kLibxl,    // libxl stream
  kLibxc,    // bare libxc image (no emulator records)
};

struct SaveOptions {
  Layout layout = Layout::kAuto;
  std::uint32_t batch = 1024;  // pfns per PAGE_DATA (Xen's MAX_BATCH_SIZE)
  // Called after every PAGE_DATA record with (data pages written so far,
  // bytes written so far).
  std::function<void(std::uint64_t, std::uint64_t)> progress;
};

struct SaveSummary {
  std::uint64_t bytes = 0;        // written to the sink
  std::uint64_t pages = 0;        // data pages written
  std::uint64_t records = 0;      // PAGE_DATA records
  std::uint32_t checkpoints = 0;  // CHECKPOINT records
  Layout layout = Layout::kLibxl; // the outer layer written (never kAuto)
  bool libxl = true;              // the payload is a libxl stream
};

// Writes the stream for `dir` to `sink` and flushes it.
//   kUsage  the directory is not a restored domain or lacks a file the
//           manifest names; kIo the sink failed
Expected<SaveSummary> save_directory(const std::string& dir, Sink& sink, const SaveOptions& opts);

// Writes a checkpointed stream over `dirs` (at least one; all the same
// domain type). See the header comment.
Expected<SaveSummary> save_checkpointed(const std::vector<std::string>& dirs, Sink& sink,
                                        const SaveOptions& opts);

}  // namespace xenstream::save
