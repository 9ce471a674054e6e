// Fuzz target: the receiver of xl's migration protocol (tools/migrate).
//
// The last input octet chooses the mode and --take-over; the others are what
// the sender writes. The restore step is a stand-in that consumes a number of
// octets chosen by the input and returns a chosen status, so the fuzzer
// reaches the xl header checks, the legacy conversion hand-off and the GO
// reading with any bytes after them. Checks: errors point inside the input,
// the status octet sent matches the outcome, and a receiver never answers
// after a failed header check or restore.
#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/common/walk.h"
#include "tools/migrate/xl_migrate.h"

namespace {

using namespace xenstream;

// The message without the input it echoes: text in quotes, which
// printable() writes with every quote character inside escaped. A quote
// that follows a letter or digit is an apostrophe ("the sender's"), not one.
std::string without_echoes(const std::string& m) {
  std::string out;
  char quote = 0;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const char c = m[i];
    if (quote != 0) {
      if (c == quote) quote = 0;
      continue;
    }
    const bool after_word = i > 0 && std::isalnum(static_cast<unsigned char>(m[i - 1])) != 0;
    if ((c == '\'' || c == '"') && !after_word) {
      quote = c;
      continue;
    }
    out += c;
  }
  return out;
}

int dev_null() {
  static const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t control = data[size - 1];
  const Bytes stream(reinterpret_cast<const std::byte*>(data), size - 1);
  migrate::ReceiverOptions opts;
  opts.mode = static_cast<migrate::Mode>(control % 3);
  opts.take_over = (control & 4) != 0;
  bool restored = false;
  auto restore = [&](Source& src, const ContainerInfo& c) -> int {
    restored = true;
    FUZZ_CHECK(c.kind == ContainerKind::kXl && c.xl, "restore called without an xl header");
    FUZZ_CHECK(c.xl->config_len && *c.xl->config_len > 0, "restore called without a config");
    // Consume up to (control >> 3) * 64 octets, then return a status.
    std::size_t want = static_cast<std::size_t>(control >> 3) * 64;
    while (want > 0) {
      auto got = src.pull(1, "the payload");
      if (!got || got->empty()) break;
      const std::size_t n = std::min(want, got->size());
      src.consume(n);
      want -= n;
    }
    return (control & 0x08) ? 3 : (control & 0x10) ? 1 : 0;
  };
  MemorySource src(stream, "<sender>");
  auto rep = migrate::run_xl_migrate_receiver(src, dev_null(), restore, opts);
  if (!rep) {
    FUZZ_CHECK(rep.error().offset <= stream.size(), rep.error().describe());
    FUZZ_CHECK(!rep.error().message.empty(), "empty message");
    FUZZ_CHECK(without_echoes(rep.error().message).find("0x0x") == std::string::npos, rep.error().message);
    return 0;
  }
  FUZZ_CHECK(restored, "an outcome without a restore");
  switch (rep->outcome) {
    case migrate::ReceiverOutcome::kTakenOver:
      FUZZ_CHECK(opts.mode == migrate::Mode::kPlain && opts.take_over, "taken over without --take-over");
      FUZZ_CHECK(rep->status == std::uint8_t{0} && !rep->permission_sent, "take-over status");
      break;
    case migrate::ReceiverOutcome::kCaptured:
      FUZZ_CHECK(opts.mode == migrate::Mode::kPlain && !opts.take_over, "captured with --take-over");
      FUZZ_CHECK(rep->status == migrate::kCaptureStatus && rep->permission_sent, "capture status");
      break;
    case migrate::ReceiverOutcome::kGoRefused:
      FUZZ_CHECK(rep->go_error && rep->go_error->offset <= stream.size(), "GO error offset");
      FUZZ_CHECK(rep->status == migrate::kGoRefusedStatus && rep->permission_sent, "GO refused status");
      break;
    case migrate::ReceiverOutcome::kFailover:
    case migrate::ReceiverOutcome::kComplete:
      FUZZ_CHECK(opts.mode != migrate::Mode::kPlain && !rep->status, "a checkpointed mode answered");
      break;
    case migrate::ReceiverOutcome::kSenderLost:
      // Writes to /dev/null do not fail.
      FUZZ_CHECK(false, "sender-lost although \"domain received\" could be written");
      break;
  }
  return 0;
}
