// The `xl migrate` / `xl remus` protocol (spec/containers.md section 5):
// the receiver side, as `xl migrate-receive [-r]` answers, and a sender for
// tests. Messages are written and read with their exact lengths and compared
// octet for octet.
//
// Receiver, plain migration (steps as in the spec):
//   1  writes the 54-octet banner
//   2  reads the xl save header (a config is required)
//   3  hands the libxl stream to `restore`, which must read no further than
//      the END record (restore_stream() with check_trailing off)
//   4  writes "domain received, ready to unpause\0" (34)
//   5  reads "domain is yours, you are cleared to unpause\0" (44)
//   6  writes "my copy unpause results are as follows\0" (39) and the status
//      octet (0, or what `unpause` returned)
//   7  if the status is not 0, writes the step-5 message again
// A restore that fails before step 4 sends nothing more (xl's sender then
// resumes its domain). Remus (`remus`): steps 1-3 only; `restore` returns at
// failover (the primary went away) and nothing more is written.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

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

struct ReceiverOptions {
  bool remus = false;
  UnpauseFn unpause;
};

enum class ReceiverOutcome : std::uint8_t {
  kMigrated,      // plain: steps 1-6 done, status 0 sent
  kUnpauseFailed, // plain: non-zero status sent (and step 7)
  kFailover,      // remus: the primary went away; restore returned 3
  kComplete,      // remus: the stream ended with END (restore returned 0)
};

struct ReceiverReport {
  ReceiverOutcome outcome = ReceiverOutcome::kMigrated;
  int restore_status = 0;  // what `restore` returned
  std::uint8_t status = 0; // status octet sent (plain)
  std::string config;      // the domain config from the xl header (NUL removed)
  bool config_json = true;
};

// Runs the receiver on `in_fd` (from the sender) and `out_fd` (to it).
//   kMalformed / kTruncated: the xl header or a protocol message was wrong
//   kIo: a read or write failed
//   kUsage (with message "restore failed with status N"): `restore` returned
//     neither 0 nor (remus) 3; report in error text
Expected<ReceiverReport> run_xl_migrate_receiver(int in_fd, int out_fd, const RestoreFn& restore,
                                                 const ReceiverOptions& opts = {});
// Same, with a caller-owned source (so bytes it already buffered are used).
Expected<ReceiverReport> run_xl_migrate_receiver(Source& in, int out_fd, const RestoreFn& restore,
                                                 const ReceiverOptions& opts = {});

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
