// A restored domain on disk (tools/restore/README.md): the Backend that
// needs no Xen.
//
// Layout of DIR once a restore has committed:
//   memory.raw        guest-physical memory, the page of pfn N at N*4096;
//                     sparse: pages never sent, and all-zero pages sent for
//                     a pfn not written before, are holes that read as zeros
//   manifest.json     what the domain is and the name of every other file
//   hvm-context.bin, vcpu<N>-<kind>.bin, shared-info.bin, p2m-frames.bin,
//   cpuid-policy.bin, msr-policy.bin, xenstore.json, qemu-resume.<domid>,
//   xl-config.json | xl-config.cfg | libvirt.xml, emulator.log
//
// While a restore runs, DIR/.xenstream/ holds its working state:
//   lock      POSIX-locked by the running restore (and by recovery)
//   stage/    files of the next commit (before the first commit also
//             memory.raw, written in place there)
//   pages     page data staged since the last commit (after the first one;
//             created when first needed)
//   journal   present only between a commit point and the end of its apply
//
// Commits are crash-safe: after a kill at any instant, recover_directory()
// leaves DIR exactly at the last or the one-before-last commit. A DIR with a
// .xenstream/ entry and no running restore must be recovered before it is
// read; open_restored_directory() does that.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "tools/restore/backend.h"
#include "tools/restore/fs_util.h"
#include "tools/restore/journal.h"
#include "tools/restore/manifest.h"
#include "tools/restore/page_map.h"

namespace xenstream::restore {

inline constexpr char kWorkDirName[] = ".xenstream";

// Named points of a commit, in order, passed to DirectoryOptions::on_step:
//   "staged"      staged files written (and synced), no journal yet
//   "journal-tmp" journal written under its temporary name
//   "journal"     journal renamed into place: the commit point
//   "pages-half"  half of the staged pages copied into memory.raw
//   "pages"       all pages copied, memory.raw extended
//   "renamed-one" the first staged file renamed into DIR
//   "renamed"     every staged file renamed, manifest.json last
//   "done"        journal removed
inline constexpr std::string_view kCommitSteps[] = {
    "staged", "journal-tmp", "journal", "pages-half", "pages", "renamed-one", "renamed", "done"};

struct DirectoryOptions {
  std::string dir;
  bool fsync = false;  // make every commit durable (fsync files and directories)
  std::uint32_t domid = 1;
  // Cap on page entries staged for one checkpoint: the staging index holds
  // 16 octets per entry (32 during the commit); the staged data itself is on
  // disk, 4096 octets per data-carrying entry.
  std::uint64_t max_staged_pages = kDefaultMaxStagedPages;
  // Called at each named commit step (kCommitSteps); tests use it to kill
  // the process at an exact point.
  std::function<void(std::string_view step, std::uint64_t checkpoint)> on_step;

  static constexpr std::uint64_t kDefaultMaxStagedPages = std::uint64_t{1} << 22;  // 16 GiB
};

class DirectoryBackend final : public Backend {
 public:
  // Creates DIR if it does not exist (its parent must), or takes an existing
  // empty one. Refuses (kUsage) a DIR that holds anything, including the
  // .xenstream/ of an interrupted restore (recover it first).
  static Expected<std::unique_ptr<DirectoryBackend>> create(DirectoryOptions options);
  ~DirectoryBackend() override;

  Expected<void> start(const DomainInfo& info) override;
  Expected<void> apply_pages(const PageDataView& pages) override;
  Expected<void> apply_pages_from(const PageDataView& pages, Source& in) override;
  Expected<std::uint64_t> verify_pages(const PageDataView& pages) override;
  Expected<void> set_x86_pv_info(const X86PvInfoView& info) override;
  Expected<void> set_p2m_frames(const P2mFramesView& frames) override;
  Expected<void> set_vcpu(VcpuRecord kind, std::uint32_t vcpu_id, Bytes blob) override;
  Expected<void> set_shared_info(Bytes page) override;
  Expected<void> set_tsc_info(const TscInfoView& tsc) override;
  Expected<void> set_hvm_context(Bytes blob) override;
  Expected<void> set_hvm_params(const HvmParamsView& params) override;
  Expected<void> set_cpu_policy(CpuPolicy kind, Bytes body) override;
  Expected<void> static_data_end() override;
  Expected<void> set_emulator_xenstore(
      std::uint32_t id, std::uint32_t index,
      const std::vector<std::pair<std::string, std::string>>& pairs) override;
  Expected<void> set_emulator_context(std::uint32_t id, std::uint32_t index, Bytes data) override;

  // After a failed commit() only finish() and abandon() may be called.
  Expected<void> commit(const CommitInfo& info) override;
  Expected<void> discard() override;
  // Drops anything uncommitted, rewrites manifest.json with the outcome and
  // removes .xenstream/. After a commit that failed past its commit point,
  // leaves .xenstream/ for recover_directory() and returns the reason.
  Expected<void> finish(const FinishInfo& info) override;
  // Removes everything the restore created, DIR too if it created it.
  void abandon() override;
  bool has_uncommitted() const override { return uncommitted_; }
  std::optional<EmulatorFiles> emulator_files() const override;

  const std::string& dir() const { return opts_.dir; }
  std::uint64_t commits() const { return commits_; }

 private:
  explicit DirectoryBackend(DirectoryOptions options);
  Expected<void> open_dir();
  Expected<void> stage_file(const std::string& name, std::span<const Bytes> parts,
                            unsigned mode = 0644);
  Expected<void> stage_file(const std::string& name, Bytes data, unsigned mode = 0644) {
    return stage_file(name, std::span<const Bytes>(&data, 1), mode);
  }
  Expected<void> apply_direct(const PageDataView& pages);
  Expected<void> apply_staged(const PageDataView& pages, Source* in);
  Expected<void> apply_direct_from(const PageDataView& pages, Source& in);
  Expected<void> do_commit(const CommitInfo& info);
  void step(std::string_view name, std::uint64_t checkpoint) const {
    if (opts_.on_step) opts_.on_step(name, checkpoint);
  }
  void touch() { uncommitted_ = true; }

  DirectoryOptions opts_;
  UniqueFd dir_fd_;
  UniqueFd work_fd_;   // DIR/.xenstream
  UniqueFd stage_fd_;  // DIR/.xenstream/stage
  UniqueFd lock_fd_;
  UniqueFd mem_fd_;    // memory.raw (in stage/ until the first commit)
  UniqueFd pages_fd_;  // .xenstream/pages
  bool created_dir_ = false;
  bool started_ = false;
  bool broken_ = false;          // a commit failed
  bool journal_pending_ = false; // ... past its commit point
  std::uint64_t commits_ = 0;    // commit() calls that succeeded
  std::uint64_t checkpoint_ = 0; // checkpoint number of the last commit
  DomainInfo info_;
  PageMap map_;
  std::vector<JournalPage> staged_;  // arrival order
  std::uint64_t staged_slots_ = 0;
  std::set<std::string> staged_files_;
  bool xenstore_dirty_ = false;
  bool uncommitted_ = false;
  DomainState committed_;
  DomainState pending_;
  StreamFacts last_facts_;
};

struct RecoveryReport {
  enum class Action : std::uint8_t {
    kNone,             // no .xenstream/: nothing to do
    kFinishedCommit,   // a journal was in place: its commit was completed
    kDroppedStaging,   // no journal: uncommitted work was removed
  };
  Action action = Action::kNone;
  std::optional<std::uint64_t> journal_checkpoint;  // with kFinishedCommit
  bool has_manifest = false;                         // DIR holds a restored domain
  std::optional<std::uint64_t> checkpoints;          // from manifest.json
  std::string status;                                // manifest "status"
};

// Brings DIR to a consistent state after an interrupted restore: completes a
// commit whose journal is in place (always fsyncing), else drops the staged
// work, then removes .xenstream/. Idempotent; safe to interrupt and repeat.
//   kUsage: a restore is still running on DIR (its lock is held)
//   kIo:    the file system refused
Expected<RecoveryReport> recover_directory(const std::string& dir);

// Recovers DIR if needed, then reads manifest.json.
//   kMalformed: no manifest.json, or it is not JSON
Expected<nlohmann::json> open_restored_directory(const std::string& dir);

// Applies a decoded journal; shared by commits and recovery.
// `dir_fd` is DIR, `work_fd` DIR/.xenstream.
Expected<void> apply_journal(const Journal& j, int dir_fd, int work_fd, bool durable,
                             const std::function<void(std::string_view)>& on_step);

}  // namespace xenstream::restore
