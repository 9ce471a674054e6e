// xl migrate protocol: see xl_migrate.h.
#include "tools/migrate/xl_migrate.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

#include <xenstream/libstream/format/containers.h>
#include <xenstream/libstream/sink.h>
#include "tools/convert/converter.h"

namespace xenstream::migrate {
namespace {

Error malformed(std::uint64_t off, std::string m) { return make_error(ErrorCode::kMalformed, off, std::move(m)); }

// Reads exactly want.size() octets from `src` and compares them.
Expected<void> expect_from_source(Source& src, std::string_view want, std::string_view what) {
  const std::uint64_t at = src.position();
  auto got = src.peek(want.size());
  if (!got) return std::move(got).error();
  if (got->size() < want.size() || std::memcmp(got->data(), want.data(), want.size()) != 0) {
    // peek() may return fewer octets only at end of input.
    const std::string_view g(reinterpret_cast<const char*>(got->data()), std::min(got->size(), want.size()));
    if (got->size() < want.size() && want.substr(0, g.size()) == g) {
      return make_error(ErrorCode::kTruncated, at,
                        "the sender went away while sending " + std::string(what) + " [" + hex(at) + ", " +
                            hex(at + want.size()) + ")");
    }
    return malformed(at, std::string(what) + ": expected \"" + printable(want) + "\", got \"" + printable(g) + "\"");
  }
  src.consume(want.size());
  return {};
}

}  // namespace

Expected<void> write_all(int fd, std::string_view bytes, std::string_view what) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("writing " + std::string(what) + " failed", errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Expected<void> expect_message(int fd, std::string_view want, std::string_view what) {
  std::string got(want.size(), '\0');
  std::size_t have = 0;
  while (have < want.size()) {
    const ssize_t n = ::read(fd, got.data() + have, want.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("reading " + std::string(what) + " failed", errno);
    }
    if (n == 0) {
      return make_error(ErrorCode::kTruncated, have,
                        "the peer went away after " + std::to_string(have) + " of the " +
                            std::to_string(want.size()) + " octets of " + std::string(what));
    }
    have += static_cast<std::size_t>(n);
  }
  if (got != want) {
    return malformed(0, std::string(what) + ": expected \"" + printable(want) + "\", got \"" + printable(got) + "\"");
  }
  return {};
}

std::string_view mode_name(Mode mode) {
  switch (mode) {
    case Mode::kPlain: return "plain";
    case Mode::kRemus: return "remus";
    case Mode::kColo: return "colo";
  }
  return "?";
}

std::string_view outcome_name(ReceiverOutcome outcome) {
  switch (outcome) {
    case ReceiverOutcome::kTakenOver: return "taken-over";
    case ReceiverOutcome::kCaptured: return "captured";
    case ReceiverOutcome::kGoRefused: return "go-refused";
    case ReceiverOutcome::kFailover: return "failover";
    case ReceiverOutcome::kComplete: return "complete";
    case ReceiverOutcome::kSenderLost: return "sender-lost";
  }
  return "?";
}

namespace {

// create_domain's checks of the xl save header, in its order. xl reads the
// header fields in its own (x86: little-endian) order and compares.
Expected<void> check_xl_header(const XlHeaderInfo& xl) {
  const std::uint64_t at = xl.offset;
  // read_xl() takes the order in which the word reads 0x01020304; xl reads
  // it little-endian only.
  const std::uint32_t as_xl_reads =
      xl.order == ByteOrder::kLittle ? xl.byteorder : __builtin_bswap32(xl.byteorder);
  if (as_xl_reads != format::xl::kByteOrderMark) {
    auto e = malformed(at + 32, "xl save header: the byte-order word reads " + hex(as_xl_reads) +
                                    " little-endian, not 0x1020304: xl refuses it (\"wrong byte order\")");
    e.range = ByteRange{at + 32, at + 36};
    return e;
  }
  if ((xl.mandatory_flags & ~format::xl::kMandatoryKnown) != 0) {
    auto e = malformed(at + 36, "xl save header: mandatory_flags " + hex(xl.mandatory_flags) +
                                    " has unknown bits " + hex(xl.mandatory_flags & ~format::xl::kMandatoryKnown) +
                                    ": xl refuses it (\"need newer xl\")");
    e.range = ByteRange{at + 36, at + 40};
    return e;
  }
  const std::uint64_t od = at + 48;
  if (xl.optional_data_len == 0) {
    return malformed(at + 44, "xl save header: no optional data, so no domain config; xl migrate "
                              "always sends one and xl's receiver refuses a stream without it");
  }
  if (!xl.config_len) {
    auto e = malformed(od, "xl save header: optional data [" + hex(od) + ", " + hex(od + xl.optional_data_len) +
                               ") is shorter than its 4-octet config_len (xl: \"Savefile truncated\")");
    e.range = ByteRange{od, od + xl.optional_data_len};
    return e;
  }
  if (*xl.config_len > xl.optional_data_len - 4) {
    auto e = malformed(od, "xl save header: config_len " + hex(*xl.config_len) + " overruns the optional data [" +
                               hex(od + 4) + ", " + hex(od + xl.optional_data_len) +
                               ") (xl: \"Savefile truncated\")");
    e.range = ByteRange{od, od + 4};
    return e;
  }
  if (*xl.config_len == 0) {
    return malformed(od, "xl save header: config_len is 0: no domain config (xl's receiver refuses the stream)");
  }
  return {};
}

// A header without STREAMv2: the payload is a legacy (pre-4.6) stream, which
// xl hands to libxl as stream version 1 and libxl converts on the fly
// (convert-legacy-stream). Here tools/convert converts it into a pipe in a
// thread while `restore` reads the libxl stream from the other end. The
// converter reads from `in` itself, so it stops where the legacy stream ends
// and what follows (the GO message) stays in `in`.
int restore_legacy(Source& in, const ContainerInfo& container, const RestoreFn& restore, Mode mode,
                   ReceiverReport& rep) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    rep.legacy_error = io_error("cannot create a pipe for the legacy conversion", errno);
    return 2;
  }
  std::optional<Expected<convert::ConvertResult>> converted;
  std::vector<std::string> notes;
  std::thread converter([&] {
    FdSink sink(p[1], "<converted stream>");
    convert::ConvertOptions co;
    co.format = convert::OutputFormat::kLibxl;
    co.xl_header = false;  // read above
    co.reader.input_continues = true;  // the GO message follows on `in`
    // Without -r, one image, as convert-legacy-stream reads (xl_migrate.h).
    co.reader.single_checkpoint = mode == Mode::kPlain;
    co.report = [&notes](convert::Severity sev, const std::string& m) {
      if (sev == convert::Severity::kWarning) notes.push_back(m);
    };
    converted = convert::convert_legacy(in, sink, co);
    if (*converted) {
      if (auto f = sink.flush(); !f) *converted = std::move(f).error();
    }
    ::close(p[1]);
  });
  int status = 1;
  {
    FdSource out(p[0], "<converted stream>");
    auto c = read_container(out, FormatHint::kLibxl);
    if (c) {
      ContainerInfo both = *c;
      both.kind = ContainerKind::kXl;
      both.xl = container.xl;  // the config comes from the xl header
      // ... which now describes the converted (v2) stream, as libxl sees it.
      both.xl->mandatory_flags |= format::xl::kMandatoryStreamV2;
      status = restore(out, both);
    }
    ::close(p[0]);  // a converter still writing now fails (EPIPE) and stops
  }
  converter.join();
  rep.legacy_converted = true;
  rep.legacy_warnings = std::move(notes);
  if (*converted) {
    rep.legacy_checkpoints = (*converted)->checkpoints;
    rep.legacy_last_checkpoint = (*converted)->last_checkpoint;
  }
  if (!*converted) {
    rep.legacy_error = std::move(*converted).error();
    return status == 2 ? 2 : 1;
  }
  return status;
}

std::string legacy_note(const ReceiverReport& rep) {
  if (!rep.legacy_error) return "";
  return "; converting the legacy stream: " + rep.legacy_error->describe();
}

// Writes steps 6 and 7 with `status`, recording what was written.
void report_status(int out_fd, std::uint8_t status, ReceiverReport& rep) {
  std::string report(kReceiverReport);
  report.push_back(static_cast<char>(status));
  if (auto w = write_all(out_fd, report, "the unpause result"); !w) {
    rep.reply_error = std::move(w).error();
    return;
  }
  rep.status = status;
  if (status == 0) return;
  if (auto w = write_all(out_fd, kSenderGo, "the permission to resume"); !w) {
    rep.reply_error = std::move(w).error();
    return;
  }
  rep.permission_sent = true;
}

}  // namespace

Expected<ReceiverReport> run_xl_migrate_receiver(Source& in, int out_fd, const RestoreFn& restore,
                                                 const ReceiverOptions& opts) {
  XS_TRY(write_all(out_fd, kReceiverBanner, "the receiver banner"));
  auto container = read_container(in, FormatHint::kXl);
  if (!container) return std::move(container).error();
  if (container->kind != ContainerKind::kXl || !container->xl) {
    return malformed(0, "the sender did not start with an xl save header");
  }
  ReceiverReport rep;
  const XlHeaderInfo& xl = *container->xl;
  XS_TRY(check_xl_header(xl));
  rep.config = xl.config;
  while (!rep.config.empty() && rep.config.back() == '\0') rep.config.pop_back();
  rep.config_json = xl.json();
  if (xl.stream_v2() && container->payload != PayloadKind::kLibxl) {
    return malformed(container->payload_offset,
                     "the xl header's STREAMv2 flag promises a libxl stream; the payload is not one");
  }

  if (!xl.stream_v2() && opts.mode == Mode::kColo) {
    return malformed(container->payload_offset,
                     "the xl header has no STREAMv2 flag: a legacy stream, which cannot carry COLO's "
                     "checkpoint states (libxl restores legacy streams without a back channel)");
  }

  if (xl.stream_v2()) {
    rep.restore_status = restore(in, *container);
  } else {
    // As xl's migrate_receive: a broken pipe is an error, not a signal.
    ::signal(SIGPIPE, SIG_IGN);
    rep.restore_status = restore_legacy(in, *container, restore, opts.mode, rep);
    if (rep.legacy_error && rep.restore_status == 0) rep.restore_status = 1;
  }
  if (opts.mode != Mode::kPlain) {
    // A legacy Remus stream that ended without LAST_CHECKPOINT: the primary
    // went away after the last complete checkpoint (xl_migrate.h).
    if (rep.restore_status == 3 || (rep.restore_status == 0 && rep.legacy_converted && !rep.legacy_last_checkpoint)) {
      rep.outcome = ReceiverOutcome::kFailover;
      return rep;
    }
    if (rep.restore_status == 0) {
      rep.outcome = ReceiverOutcome::kComplete;
      return rep;
    }
    return make_error(ErrorCode::kUsage, in.position(),
                      "restore failed with status " + std::to_string(rep.restore_status) + legacy_note(rep));
  }
  if (rep.restore_status != 0) {
    return make_error(ErrorCode::kUsage, in.position(),
                      "restore failed with status " + std::to_string(rep.restore_status) + legacy_note(rep));
  }
  if (auto w = write_all(out_fd, kReceiverReady, "\"domain received\""); !w) {
    // xl's receiver exits here; its sender sees the connection drop and
    // resumes its domain (if it is still there to do so).
    rep.reply_error = std::move(w).error();
    rep.outcome = ReceiverOutcome::kSenderLost;
    return rep;
  }
  if (auto go = expect_from_source(in, kSenderGo, "the sender's \"cleared to unpause\""); !go) {
    // xl: status 0xFF, destroy its copy, then the permission to resume.
    rep.go_error = std::move(go).error();
    rep.outcome = ReceiverOutcome::kGoRefused;
    report_status(out_fd, kGoRefusedStatus, rep);
    return rep;
  }
  const std::uint8_t status = opts.unpause ? opts.unpause() : (opts.take_over ? 0 : kCaptureStatus);
  report_status(out_fd, status, rep);
  rep.outcome = status == 0 ? ReceiverOutcome::kTakenOver : ReceiverOutcome::kCaptured;
  return rep;
}

Expected<void> ColoBackChannel::checkpoint_state(std::uint32_t id) {
  // libxl record header {type 5 (CHECKPOINT_STATE), length 4}, the id, padding to 8.
  std::string rec(16, '\0');
  rec[0] = 5;
  rec[4] = 4;
  for (int i = 0; i < 4; ++i) rec[8 + i] = static_cast<char>((id >> (8 * i)) & 0xff);
  XS_TRY(write_all(fd_, rec, "a CHECKPOINT_STATE on the back channel"));
  ++messages_;
  return {};
}

Expected<void> ColoBackChannel::checkpoint_applied() {
  XS_TRY(checkpoint_state(kColoSvmReady));
  return checkpoint_state(kColoSvmResumed);
}

Expected<void> ColoBackChannel::new_checkpoint() {
  XS_TRY(checkpoint_state(kColoSvmSuspended));
  // libxc record header {type 0x0f (CHECKPOINT_DIRTY_PFN_LIST), length 0}.
  const std::string rec("\x0f\0\0\0\0\0\0\0", 8);
  XS_TRY(write_all(fd_, rec, "the dirty pfn list on the back channel"));
  ++messages_;
  return {};
}

Expected<ReceiverReport> run_xl_migrate_receiver(int in_fd, int out_fd, const RestoreFn& restore,
                                                 const ReceiverOptions& opts) {
  FdSource src(in_fd, "<migration stream>");
  return run_xl_migrate_receiver(src, out_fd, restore, opts);
}

Expected<std::uint8_t> run_xl_migrate_sender(int in_fd, int out_fd, const StreamWriter& write_stream,
                                             bool remus) {
  XS_TRY(expect_message(in_fd, kReceiverBanner, "the receiver banner"));
  XS_TRY(write_stream(out_fd));
  if (remus) return std::uint8_t{0};
  XS_TRY(expect_message(in_fd, kReceiverReady, "\"domain received\""));
  XS_TRY(write_all(out_fd, kSenderGo, "\"cleared to unpause\""));
  XS_TRY(expect_message(in_fd, kReceiverReport, "the unpause result"));
  char status = 0;
  for (;;) {
    const ssize_t n = ::read(in_fd, &status, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return io_error("reading the unpause status failed", errno);
    if (n == 0) return make_error(ErrorCode::kTruncated, 0, "the receiver went away before the status octet");
    break;
  }
  if (status != 0) XS_TRY(expect_message(in_fd, kSenderGo, "the permission to resume"));
  return static_cast<std::uint8_t>(status);
}

}  // namespace xenstream::migrate
