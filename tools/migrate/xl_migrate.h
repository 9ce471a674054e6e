// The `xl migrate` / `xl remus` protocol (spec/xl-migrate.md): the
// receiver side, as `xl migrate-receive [-r|--colo]` answers (Xen's
// tools/xl/xl_migrate.c migrate_receive, create_domain in xl_vmcontrol.c),
// and a sender for tests. Messages are written and read with their exact
// lengths and compared octet for octet.
//
// Receiver, plain migration:
//   1  writes the 54-octet banner
//   2  reads the xl save header and checks it as create_domain does: the
//      byte-order word must read 0x01020304 natively (little-endian here),
//      no unknown mandatory flag, optional data of at least 4 octets and a
//      config_len that fits in it. A failed check ends the receiver with
//      nothing more written (xl exits; its sender resumes the domain)
//   3  hands the libxl stream to `restore`, which must read no further than
//      the END record (restore_stream() with check_trailing off). Without the
//      STREAMv2 flag the payload is a legacy stream, converted on the fly with
//      tools/convert as libxl does with convert-legacy-stream (see "Legacy
//      payloads" below)
//   4  writes "domain received, ready to unpause\0" (34); when that fails
//      (the sender went away) the outcome is kSenderLost
//   5  reads "domain is yours, you are cleared to unpause\0" (44)
//   6  writes "my copy unpause results are as follows\0" (39) and the status
//      octet: 0 with `take_over` (the sender then destroys its domain), else
//      kCaptureStatus (the sender resumes its domain)
//   7  if the status is not 0, writes the step-5 message back (permission to
//      resume)
// A wrong or missing step-5 message is answered as xl answers it: steps 6
// and 7 with status 0xFF (outcome kGoRefused).
// A restore that fails before step 4 sends nothing more. Remus and COLO
// (`mode`): steps 1-3 only; `restore` returns at failover (the primary went
// away) and nothing more is written.
//
// Legacy payloads (no STREAMv2 flag). Nothing in a legacy stream says
// whether another checkpoint follows a complete one except LAST_CHECKPOINT,
// which Remus senders never wrote. Xen's convert-legacy-stream reads one
// image whatever follows, so:
//   plain: the first checkpoint is the stream; the receiver does not wait
//     for more input (a sender without LAST_CHECKPOINT waits for step 4),
//     and whatever the sender writes next is read as step 5 (a Remus sender's
//     next checkpoint is a wrong GO, answered with 0xFF as xl does)
//   Remus: checkpoints are converted as they come (each one is committed
//     when the next is complete: only then is it known not to be the last);
//     the end of input without LAST_CHECKPOINT is the primary going away:
//     kFailover at the last complete checkpoint (an incomplete one is
//     dropped). With LAST_CHECKPOINT the stream is complete (kComplete).
//     Xen takes the first checkpoint only and fails over at once.
//   COLO: refused (kMalformed, nothing written after the banner): a legacy
//     stream cannot carry COLO's checkpoint states (libxl asserts it has no
//     back channel).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/source.h>

namespace xenstream::migrate {

inline constexpr std::string_view kReceiverBanner{
    "xl migration receiver ready, send binary domain data.\n", 54};
inline constexpr std::string_view kReceiverReady{"domain received, ready to unpause\0", 34};
inline constexpr std::string_view kSenderGo{"domain is yours, you are cleared to unpause\0", 44};
inline constexpr std::string_view kReceiverReport{"my copy unpause results are as follows\0", 39};

// What the restore callback reports: the tool exit status convention
// (0 complete, 3 failover, 1 bad stream, 2 I/O error, 4 replay failed).
// `src` is positioned at the payload after the xl header described by
// `container`. The callback must not read past the stream's END.
using RestoreFn = std::function<int(Source& src, const ContainerInfo& container)>;

// Called after step 5 to "unpause" the restored domain; its value is the
// status octet (0 = success). Default: 0.
using UnpauseFn = std::function<std::uint8_t()>;

// The receiver's modes, from its flags as in xl: `migrate-receive`,
// `migrate-receive -r` (a Remus secondary), `migrate-receive --colo`.
enum class Mode : std::uint8_t { kPlain, kRemus, kColo };
std::string_view mode_name(Mode mode);  // "plain", "remus", "colo"

// The status octet of step 6 for a capture: what xl's receiver sends when
// libxl_domain_unpause fails with ERROR_FAIL (-3). Non-zero, so the sender
// resumes its domain and the capture costs the source nothing.
inline constexpr std::uint8_t kCaptureStatus = 3;
// The status octet xl's receiver sends when the GO message is wrong or
// missing (migrate_read_fixedmessage's 1, negated into one octet).
inline constexpr std::uint8_t kGoRefusedStatus = 0xFF;

struct ReceiverOptions {
  Mode mode = Mode::kPlain;
  // Report success (status 0) at step 6: the sender destroys its domain.
  // Off: report kCaptureStatus and let the sender resume it.
  bool take_over = false;
  // Overrides the status octet of a successful step 5 (tests).
  UnpauseFn unpause;
};

enum class ReceiverOutcome : std::uint8_t {
  kTakenOver,  // plain: steps 1-6 done, status 0 sent: the sender destroys its domain
  kCaptured,   // plain: non-zero status and step 7 sent: the sender resumes its domain
  kGoRefused,  // plain: step 5 wrong or missing; 0xFF and step 7 sent (as xl)
  kFailover,   // remus/colo: the primary went away; restore returned 3
  kComplete,   // remus/colo: the stream ended with END (restore returned 0)
  kSenderLost,  // plain: restored, but step 4 could not be written (the sender went away)
};
std::string_view outcome_name(ReceiverOutcome outcome);  // "taken-over", "captured", ...

struct ReceiverReport {
  ReceiverOutcome outcome = ReceiverOutcome::kCaptured;
  int restore_status = 0;  // what `restore` returned
  std::optional<std::uint8_t> status;  // status octet sent (plain), when it was sent
  bool permission_sent = false;        // step 7 written
  std::optional<Error> go_error;       // kGoRefused: what was wrong with step 5
  std::optional<Error> reply_error;    // steps 6/7 could not be written (the sender went away)
  // No STREAMv2 flag: the legacy payload was converted (tools/convert) and
  // the result restored; the converter's warnings and error.
  bool legacy_converted = false;
  std::vector<std::string> legacy_warnings;
  std::optional<Error> legacy_error;
  std::uint64_t legacy_checkpoints = 0;  // complete legacy checkpoints converted
  bool legacy_last_checkpoint = false;   // the legacy stream said LAST_CHECKPOINT
  std::string config;      // the domain config from the xl header (NUL removed)
  bool config_json = true;
};

// Runs the receiver on `in_fd` (from the sender) and `out_fd` (to it).
//   kMalformed / kTruncated: the xl header was wrong, or a legacy payload
//     came in COLO mode (nothing written after the banner); a wrong step 5
//     is not an error but kGoRefused, a failed step 4 not one but kSenderLost
//   kIo: a read or write failed
//   kUsage (with message "restore failed with status N"): `restore` returned
//     neither 0 nor (remus) 3; report in error text
Expected<ReceiverReport> run_xl_migrate_receiver(int in_fd, int out_fd, const RestoreFn& restore,
                                                 const ReceiverOptions& opts = {});
// Same, with a caller-owned source (so bytes it already buffered are used).
Expected<ReceiverReport> run_xl_migrate_receiver(Source& in, int out_fd, const RestoreFn& restore,
                                                 const ReceiverOptions& opts = {});

// A COLO secondary's answers to the primary on the back channel (the
// receiver's stdout), as libxl's secondary writes them (libxl_colo_restore.c,
// libxl_stream_write.c with back_channel set: no stream header; xg_sr_restore.c
// handle_checkpoint and send_checkpoint_dirty_pfn_list):
//   after each checkpoint is applied: CHECKPOINT_STATE(SVM_READY), then
//     CHECKPOINT_STATE(SVM_RESUMED); each a libxl record: u32 type 5,
//     u32 length 4, u32 id, 4 zero octets of padding (16 octets)
//   after the primary's CHECKPOINT_STATE(NEW): CHECKPOINT_STATE(SVM_SUSPENDED),
//     then a libxc CHECKPOINT_DIRTY_PFN_LIST record: u32 type 0x0f, u32 length
//     8 * count, count u64 pfns; empty here (8 octets), as nothing runs on this
//     side to dirty pages
// All little-endian. A failed write (the primary went away) is kIo.
inline constexpr std::uint32_t kColoSvmSuspended = 1;
inline constexpr std::uint32_t kColoSvmReady = 2;
inline constexpr std::uint32_t kColoSvmResumed = 3;
class ColoBackChannel {
 public:
  explicit ColoBackChannel(int fd) : fd_(fd) {}
  Expected<void> checkpoint_applied();  // SVM_READY, SVM_RESUMED
  Expected<void> new_checkpoint();      // SVM_SUSPENDED, empty dirty pfn list
  std::uint64_t messages() const { return messages_; }

 private:
  Expected<void> checkpoint_state(std::uint32_t id);
  int fd_;
  std::uint64_t messages_ = 0;
};

// Sender side, for tests: reads the banner from `in_fd`, writes `stream`
// (an xl save image: header, config, libxl stream) to `out_fd` by calling
// `write_stream(out_fd)`; plain mode then reads step 4, writes step 5 and
// returns the status octet of step 6 (reading step 7 when it is not 0).
// Remus mode returns 0 once the stream is written.
using StreamWriter = std::function<Expected<void>(int out_fd)>;
Expected<std::uint8_t> run_xl_migrate_sender(int in_fd, int out_fd, const StreamWriter& write_stream,
                                             bool remus);

// Exact-length helpers (EINTR-safe).
Expected<void> write_all(int fd, std::string_view bytes, std::string_view what);
Expected<void> expect_message(int fd, std::string_view want, std::string_view what);

}  // namespace xenstream::migrate
