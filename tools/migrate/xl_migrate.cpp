// xl migrate protocol: see xl_migrate.h.
#include "tools/migrate/xl_migrate.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace xenstream::migrate {
namespace {

Error malformed(std::uint64_t off, std::string m) { return make_error(ErrorCode::kMalformed, off, std::move(m)); }

std::string printable(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\0') out += "\\0";
    else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) out += '?';
    else out += c;
  }
  return out;
}

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
                        "the sender went away while sending " + std::string(what) + " [0x" + hex(at) +
                            ", 0x" + hex(at + want.size()) + ")");
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
  if (!xl.config_len || xl.config.empty()) {
    return malformed(xl.offset, "the xl header carries no domain config (xl migrate always sends one)");
  }
  rep.config = xl.config;
  while (!rep.config.empty() && rep.config.back() == '\0') rep.config.pop_back();
  rep.config_json = xl.json();
  if (container->payload != PayloadKind::kLibxl) {
    return malformed(container->payload_offset, "xl migrate sends a libxl v2 stream; this payload is not one");
  }

  rep.restore_status = restore(in, *container);
  if (opts.remus) {
    if (rep.restore_status == 3) {
      rep.outcome = ReceiverOutcome::kFailover;
      return rep;
    }
    if (rep.restore_status == 0) {
      rep.outcome = ReceiverOutcome::kComplete;
      return rep;
    }
    return make_error(ErrorCode::kUsage, in.position(),
                      "restore failed with status " + std::to_string(rep.restore_status));
  }
  if (rep.restore_status != 0) {
    return make_error(ErrorCode::kUsage, in.position(),
                      "restore failed with status " + std::to_string(rep.restore_status));
  }
  XS_TRY(write_all(out_fd, kReceiverReady, "\"domain received\""));
  XS_TRY(expect_from_source(in, kSenderGo, "the sender's \"cleared to unpause\""));
  rep.status = opts.unpause ? opts.unpause() : 0;
  std::string report(kReceiverReport);
  report.push_back(static_cast<char>(rep.status));
  XS_TRY(write_all(out_fd, report, "the unpause result"));
  if (rep.status != 0) {
    XS_TRY(write_all(out_fd, kSenderGo, "the permission to resume"));
    rep.outcome = ReceiverOutcome::kUnpauseFailed;
  } else {
    rep.outcome = ReceiverOutcome::kMigrated;
  }
  return rep;
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
