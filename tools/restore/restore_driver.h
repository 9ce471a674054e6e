// The restore driver: reads a v2 stream and applies it to a Backend with
// Remus/COLO checkpoint semantics (tools/restore/README.md).
//
// Commit points:
//   plain stream (no CHECKPOINT): one commit at the END that ends the stream
//   libxl stream with checkpoints: a commit at every libxl CHECKPOINT_END,
//     covering the libxc records up to CHECKPOINT and the libxl records
//     after it (emulator context, xenstore data)
//   bare libxc stream with checkpoints: a commit at every CHECKPOINT
// After a checkpoint commits, --on-checkpoint's command runs (hook).
//
// How a restore ends (RestoreStatus, and the exit status tools use):
//   kComplete      0  the stream ended with END. In a checkpointed stream,
//                     records after the last checkpoint are dropped, as Xen
//                     drops them, with a warning
//   kFailover      3  a checkpointed stream stopped after a commit (EOF, read
//                     error, truncation, an over-long record header) or the
//                     hook failed: the backend holds exactly the last
//                     committed checkpoint
//   kInvalid       1  the stream broke a rule (spec/verify-rules.md; the rule
//                     engine runs on every record before it is applied).
//                     Before the first commit the backend was abandoned
//                     (nothing looks finished); after one it holds the last
//                     committed checkpoint and its manifest says "rejected",
//                     with the rule, its offset and the checkpoint kept
//   kIoError       2  the backend (or, before any commit, the input) failed
//   kReplayFailed  4  the restore itself completed or failed over, but the
//                     device model refused the emulator context
// The driver reads no further than the END record unless check_trailing is
// set, so a caller can go on reading the same source (a migration protocol).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/source.h>
#include "tools/restore/backend.h"
#include "tools/verify/verifier.h"

namespace xenstream::restore {

struct RestoreLimits {
  // Highest pfn accepted (memory.raw would be (pfn + 1) * 4096 octets).
  std::uint64_t max_pfn = (std::uint64_t{1} << 32) - 1;  // 16 TiB of guest-physical space
  std::uint32_t max_vcpu_id = 4095;
};

struct Progress {
  std::uint64_t bytes = 0;        // stream position
  std::uint64_t size_hint = 0;    // total, when the source knows it
  std::uint64_t pages = 0;        // data pages received
  std::uint64_t checkpoints = 0;  // committed so far
  bool done = false;              // last call
};

struct RestoreOptions {
  std::uint32_t domid = 1;
  bool compressed = false;        // recorded in the manifest
  // Run after every checkpoint commit as /bin/sh -c, with XENSTREAM_CHECKPOINT
  // and hook_env in its environment; a non-zero status stops the restore.
  std::string on_checkpoint;
  std::vector<std::pair<std::string, std::string>> hook_env;
  std::string emulator_exec;      // emulator_replay.h; empty: no replay
  std::chrono::milliseconds emulator_timeout{60000};
  bool check_trailing = true;     // read to the end of input after END, warn on extra bytes
  // The rule engine's options (strictness, mode, caps); its format hint and
  // progress are not used.
  verify::VerifyOptions rules;
  RestoreLimits limits;
  std::function<void(const Progress&)> progress;
};

enum class RestoreStatus : std::uint8_t { kComplete, kFailover, kInvalid, kIoError, kReplayFailed };

int exit_status(RestoreStatus status);             // 0, 3, 1, 2, 4
std::string_view status_name(RestoreStatus status);  // "complete", "failover", ...

struct RestoreReport {
  RestoreStatus status = RestoreStatus::kInvalid;
  std::uint64_t checkpoints = 0;        // committed
  bool checkpointed = false;
  std::optional<Error> error;           // why the stream did not complete
  std::vector<std::string> warnings;  // the rules' warnings as streamverify prints them, then others
  // The first error-severity rule the stream broke (status kInvalid), and
  // every problem the rule engine listed.
  std::optional<verify::Problem> rule;
  std::vector<verify::Problem> problems;
  std::optional<ReplayRecord> replay;
  std::uint64_t bytes = 0;              // stream position at the end
  std::uint64_t pages = 0;              // data pages received
};

// read_container() failed on `src`: the rule that refuses the input, as
// streamverify names it (nullopt for an I/O failure).
std::optional<verify::Problem> container_refused(Source& src, const Error& e,
                                                 const verify::VerifyOptions& rules = {});

// Restores the stream in `src` into `backend`. `src` must be positioned at
// the payload and `container` describe what read_container() found.
RestoreReport restore_stream(Source& src, const ContainerInfo& container, Backend& backend,
                             const RestoreOptions& options);

}  // namespace xenstream::restore
