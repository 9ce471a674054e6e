// The domain a restore writes into (tools/restore/README.md, "Backends").
//
// The restore driver (restore_driver.h) reads a stream and calls a Backend
// for every piece of domain state it finds: pages by pfn with their PFINFO
// type, vCPU contexts, the HVM context and params, shared info, TSC info,
// CPU policies and the emulator blobs. The driver decides *when* state
// becomes real; the backend decides *how*:
//
//   - Everything a backend receives after its last commit() is uncommitted.
//     commit() makes all of it part of the domain at once (atomically, for a
//     backend that can crash half-way); discard() drops it.
//   - Before the first commit() the domain does not exist yet. abandon()
//     removes whatever was prepared (the stream was bad before anything
//     could be committed).
//   - finish() ends a restore that committed at least once.
//
// The driver commits at the end of a plain stream and at every checkpoint of
// a Remus/COLO stream (libxl CHECKPOINT_END, or libxc CHECKPOINT in a bare
// libxc stream). A backend is free to stage uncommitted state wherever it
// likes; DirectoryBackend stages it on disk and commits through a journal.
//
// Views passed to a backend (Bytes, Fields, decoded record views) live only
// for the duration of the call. Every method returns an Error on failure; an
// ErrorCode::kIo error means the backend itself failed (disk full, ...), any
// other code means the stream asked for something the backend refuses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/source.h>

namespace xenstream::restore {

// What the headers say about the domain; handed to Backend::start() once,
// when the first libxc record is about to be delivered.
struct DomainInfo {
  ContainerInfo container;                  // xl / libvirt header, if any
  std::optional<LibxlHeaderInfo> libxl;     // absent for a bare libxc stream
  ImageHeaderInfo image;
  DomainHeaderInfo domain;
  std::uint32_t domid = 1;                  // names qemu-resume.<domid>
  bool compressed = false;                  // the input was zstd-compressed
};

// The four X86_PV_VCPU_* records, in record-type order.
enum class VcpuRecord : std::uint8_t { kBasic, kExtended, kXsave, kMsrs };
std::string_view vcpu_record_name(VcpuRecord kind);  // "basic", "extended", ...

enum class CpuPolicy : std::uint8_t { kCpuid, kMsr };

// A record type the driver skipped (optional, unknown), with how often.
struct SkippedRecord {
  Layer layer = Layer::kLibxc;
  std::uint32_t type = 0;
  std::uint64_t count = 0;
};

// Facts about the stream so far, for the backend's records (manifest).
struct StreamFacts {
  bool checkpointed = false;    // a CHECKPOINT was seen
  bool colo = false;            // a CHECKPOINT_STATE was seen
  std::uint64_t stream_offset = 0;
  std::vector<SkippedRecord> skipped;
  std::uint64_t verify_pages = 0;       // pages compared after a VERIFY record
  std::uint64_t verify_mismatches = 0;
};

struct CommitInfo {
  // Number of checkpoints committed once this commit is done (1 for the
  // first checkpoint); 0 for the one commit of a plain stream.
  std::uint64_t checkpoint = 0;
  StreamFacts facts;
};

enum class Outcome : std::uint8_t {
  kComplete,  // the stream ended with END
  kFailover,  // a checkpointed stream stopped early; the last commit stands
  kRejected,  // a record after a commit broke a rule; the last commit stands
};

// The rule a stream broke (spec/verify-rules.md), for the manifest.
struct RuleBreak {
  std::string rule;  // "LIBXC-PAGE-05"
  std::uint64_t offset = 0;
  std::string where;  // "record #17 PAGE_DATA"
  std::string message;
};

// What happened to the emulator replay (emulator_replay.h), if one ran.
struct ReplayRecord {
  bool ok = false;
  std::string command;
  std::optional<int> pid;           // the device model, while it runs
  bool running = false;             // left running after a successful load
  std::string qmp_socket;           // empty when the command used no {qmp}
  std::string log_file;
  std::string message;              // why it failed
};

struct FinishInfo {
  Outcome outcome = Outcome::kComplete;
  std::uint64_t checkpoints = 0;            // committed
  std::optional<Error> reason;              // why a failover happened
  std::optional<RuleBreak> rule;            // kRejected: the rule broken
  StreamFacts facts;
  std::optional<ReplayRecord> replay;
  std::vector<std::string> warnings;
};

// Where the device-model files of a backend live (emulator_replay.h).
struct EmulatorFiles {
  std::string restore_file;  // the committed emulator context
  std::string log_file;      // the device model's stdout and stderr
  std::string qmp_socket;    // substituted for {qmp}
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual Expected<void> start(const DomainInfo& info) = 0;

  // One PAGE_DATA record: entries (pfn + PFINFO type) and the data of every
  // data-carrying entry, in entry order (libstream/records.h). Pfns have
  // been checked against the driver's limit.
  virtual Expected<void> apply_pages(const PageDataView& pages) = 0;
  // apply_pages() for pages the backend takes straight from the input:
  // `pages.pages` is empty and the data of its data_pages entries are the
  // next 4096 * data_pages octets of `in`, in entry order. The backend moves
  // them with Source::transfer() (from a pipe they never enter user space)
  // and leaves `in` just past them; an input error (kTruncated with its
  // exact offset, kIo) is returned as Source::transfer() gave it.
  virtual Expected<void> apply_pages_from(const PageDataView& pages, Source& in) = 0;
  // After a VERIFY record: compares the data pages with the domain's memory
  // instead of writing them. Returns the number of pages that differ.
  virtual Expected<std::uint64_t> verify_pages(const PageDataView& pages) = 0;

  virtual Expected<void> set_x86_pv_info(const X86PvInfoView& info) = 0;
  virtual Expected<void> set_p2m_frames(const P2mFramesView& frames) = 0;
  // `blob` is the record body after the 8-octet {vcpu_id, reserved} header.
  virtual Expected<void> set_vcpu(VcpuRecord kind, std::uint32_t vcpu_id, Bytes blob) = 0;
  virtual Expected<void> set_shared_info(Bytes page) = 0;
  virtual Expected<void> set_tsc_info(const TscInfoView& tsc) = 0;
  virtual Expected<void> set_hvm_context(Bytes blob) = 0;
  virtual Expected<void> set_hvm_params(const HvmParamsView& params) = 0;
  virtual Expected<void> set_cpu_policy(CpuPolicy kind, Bytes body) = 0;
  virtual Expected<void> static_data_end() = 0;
  virtual Expected<void> set_emulator_xenstore(
      std::uint32_t id, std::uint32_t index,
      const std::vector<std::pair<std::string, std::string>>& pairs) = 0;
  // `data` is the record body after the 8-octet emulator sub-header, exactly
  // the octets libxl writes to its device-model restore file.
  virtual Expected<void> set_emulator_context(std::uint32_t id, std::uint32_t index,
                                              Bytes data) = 0;

  virtual Expected<void> commit(const CommitInfo& info) = 0;
  virtual Expected<void> discard() = 0;
  virtual Expected<void> finish(const FinishInfo& info) = 0;
  virtual void abandon() = 0;

  // True when something arrived since the last commit (or discard).
  virtual bool has_uncommitted() const = 0;

  // The committed emulator context and where its device model should log,
  // or nullopt when the committed domain has no emulator context.
  virtual std::optional<EmulatorFiles> emulator_files() const = 0;
};

}  // namespace xenstream::restore
