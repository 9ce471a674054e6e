#include <xenstream/libstream/blobs/qemu_state.h>

#include <optional>
#include <set>
#include <utility>

#include <xenstream/libstream/fields.h>

namespace xenstream::blobs {

namespace {

using S = FindingSeverity;
using E = Enforcement;

constexpr RuleInfo kRules[] = {
    {"QEVM-01", S::kError, E::kQemu, "the blob starts with the magic \"QEVM\" (0x5145564d)"},
    {"QEVM-02", S::kError, E::kQemu, "the format version is 3"},
    {"QEVM-03", S::kError, E::kQemu,
     "every token has a known type and is complete: section headers fit and have a non-empty "
     "printable idstr, COMMAND and CONFIGURATION lengths fit, CONFIGURATION only first"},
    {"QEVM-04", S::kError, E::kQemu,
     "SECTION_PART, SECTION_END and footers name a section that is open"},
    {"QEVM-05", S::kError, E::kQemu,
     "an EOF marker follows the last section (a next token is found after every payload)"},
    {"QEVM-06", S::kWarning, E::kStrict,
     "after EOF comes nothing, or exactly one well-formed VMDESCRIPTION"},
    {"QEVM-07", S::kError, E::kQemu,
     "Xen device state: no CONFIGURATION section and no section footers (QEMU under Xen has "
     "both switched off and refuses them)"},
    {"QEVM-08", S::kWarning, E::kStrict,
     "Xen device state: only SECTION_FULL sections, no COMMAND, no VMDESCRIPTION (what "
     "xen-save-devices-state writes)"},
    {"QEVM-09", S::kWarning, E::kStrict, "no (idstr, instance_id) pair is sent twice in FULL/START sections"},
};

const RuleInfo& rule(int n) { return kRules[n - 1]; }

constexpr std::size_t kMaxOpenSections = 65536;
// Consecutive COMMAND tokens accepted while looking for a payload's end.
constexpr int kMaxCommandRun = 64;

bool printable(std::uint8_t c) { return c > 0x20 && c < 0x7F; }

class Walker {
 public:
  Walker(Bytes blob, std::uint64_t base, const QemuWalkOptions& options)
      : b_(blob), f_(blob, ByteOrder::kBig, base), base_(base), options_(options) {}

  QemuStateReport run();

 private:
  bool add(int n, std::uint64_t at, std::string message) {
    const RuleInfo& r = rule(n);
    report_.findings.push_back(BlobFinding{r.id, r.severity, at, base_ + at, std::move(message)});
    return r.severity == S::kError;
  }
  void warn_once(int n, bool& flag, std::uint64_t at, std::string message) {
    if (flag) return;
    flag = true;
    add(n, at, std::move(message));
  }
  std::uint8_t byte(std::size_t at) const { return static_cast<std::uint8_t>(b_[at]); }
  bool fits(std::size_t at, std::size_t n) const { return at <= b_.size() && n <= b_.size() - at; }

  bool vmdescription_at(std::size_t at) const;  // 0x06 + be32 len + len octets == rest
  bool plausible_header(std::size_t at) const;
  bool plausible_token(std::size_t at) const;
  // Finds where the payload starting at `start` ends. Returns false (and
  // reports QEVM-05) when no next token can be found.
  bool end_of_payload(std::size_t start, QemuSection& sec, std::size_t& next);
  void note_section(QemuSection sec);

  Bytes b_;
  Fields f_;
  std::uint64_t base_;
  const QemuWalkOptions& options_;
  QemuStateReport report_;
  std::set<std::uint32_t> open_;
  std::set<std::pair<std::string, std::uint32_t>> seen_;
  bool warned_shape_ = false;
  bool warned_dup_ = false;
};

bool Walker::vmdescription_at(std::size_t at) const {
  if (!fits(at, 5) || byte(at) != kQemuVmDescription) return false;
  const std::uint32_t len = f_.u32(at + 1);
  return b_.size() - (at + 5) == len;
}

bool Walker::plausible_header(std::size_t at) const {
  // type, be32 section_id, u8 len, idstr, be32 instance_id, be32 version_id
  if (!fits(at, 6)) return false;
  const std::size_t n = byte(at + 5);
  if (n == 0 || !fits(at + 6, n + 8)) return false;
  if (f_.u32(at + 1) > 0xFFFF) return false;
  if (f_.u32(at + 6 + n + 4) > 0xFFFF) return false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!printable(byte(at + 6 + i))) return false;
  }
  return true;
}

bool Walker::plausible_token(std::size_t at) const {
  if (at >= b_.size()) return false;
  switch (byte(at)) {
    case kQemuEof:
      // The last octet, or followed by what claims to be a VMDESCRIPTION
      // (checked when the EOF is reached).
      return at + 1 == b_.size() || byte(at + 1) == kQemuVmDescription;
    case kQemuSectionStart:
    case kQemuSectionFull:
      return plausible_header(at);
    case kQemuSectionPart:
    case kQemuSectionEnd:
      return fits(at, 5) && open_.contains(f_.u32(at + 1));
    case kQemuCommand: {
      // A run of commands must end in another plausible token. Walked in a
      // loop (not recursion) and capped, so that octets imitating commands
      // cost neither stack nor quadratic time.
      if (options_.xen_device_state) return false;
      std::size_t p = at;
      for (int n = 0; n < kMaxCommandRun; ++n) {
        if (!fits(p, 5) || f_.u16(p + 1) >= 32 || !fits(p + 5, f_.u16(p + 3))) return false;
        p += 5 + std::size_t{f_.u16(p + 3)};
        if (p >= b_.size() || byte(p) != kQemuCommand) return plausible_token(p);
      }
      return false;
    }
    default:
      return false;
  }
}

bool Walker::end_of_payload(std::size_t start, QemuSection& sec, std::size_t& next) {
  const std::size_t size = b_.size();
  // An EOF marker that is neither the last octet nor followed by a
  // VMDESCRIPTION reaching exactly to the end is weak: payloads hold 0x00
  // 0x06 often enough (QEMU 7.2's device state for Xen does, at 0x6e). It is
  // taken only when nothing stronger follows; then octets trail it (QEVM-06).
  std::optional<std::size_t> weak_eof;
  for (std::size_t q = start; q < size; ++q) {
    const std::uint8_t t = byte(q);
    if (t == kQemuEof && q + 1 != size && !vmdescription_at(q + 1)) {
      if (!weak_eof && plausible_token(q)) weak_eof = q;
      continue;
    }
    if (t == kQemuSectionFooter && fits(q, 5) && f_.u32(q + 1) == sec.section_id &&
        plausible_token(q + 5)) {
      sec.payload_size = q - start;
      sec.footer = true;
      next = q + 5;
      return true;
    }
    if (t <= kQemuSectionFull || t == kQemuCommand) {
      if (plausible_token(q)) {
        sec.payload_size = q - start;
        next = q;
        return true;
      }
    }
  }
  if (weak_eof) {
    sec.payload_size = *weak_eof - start;
    next = *weak_eof;
    return true;
  }
  add(5, start, "no footer, section header or EOF marker follows the payload of " +
                    std::string(qemu_token_name(sec.type)) + " section " +
                    std::to_string(sec.section_id) +
                    (sec.idstr.empty() ? "" : " \"" + sec.idstr + "\"") + " starting at " +
                    hex(start) + ": the blob has no EOF marker");
  return false;
}

void Walker::note_section(QemuSection sec) {
  auto& s = report_.summary;
  ++s.sections_total;
  if (sec.footer) ++s.footers;
  if (s.sections.size() < options_.max_sections_listed) s.sections.push_back(std::move(sec));
}

QemuStateReport Walker::run() {
  auto& s = report_.summary;
  const std::size_t size = b_.size();
  if (size < 4 || f_.u32(0) != kQemuMagic) {
    std::string found = size < 4 ? std::to_string(size) + " octets" : hex(f_.u32(0));
    add(1, 0, "magic is " + found + ", expected 0x5145564d (\"QEVM\")");
    return std::move(report_);
  }
  if (size < 8) {
    add(2, 4, "the blob ends before the version field");
    return std::move(report_);
  }
  s.version = f_.u32(4);
  if (s.version != kQemuVersion) {
    add(2, 4, "version is " + std::to_string(s.version) +
                  (s.version == 2 ? " (obsolete, QEMU refuses it)" : "") + ", expected 3");
    return std::move(report_);
  }
  std::size_t pos = 8;
  if (pos < size && byte(pos) == kQemuConfiguration) {
    s.configuration = true;
    if (!fits(pos + 1, 4) || !fits(pos + 5, f_.u32(pos + 1))) {
      add(3, pos, "CONFIGURATION: the machine type name does not fit in the blob");
      return std::move(report_);
    }
    const std::uint32_t n = f_.u32(pos + 1);
    s.machine_type.assign(reinterpret_cast<const char*>(b_.data() + pos + 5), n);
    if (options_.xen_device_state) {
      add(7, pos, "a CONFIGURATION section (machine \"" + s.machine_type +
                      "\"): QEMU under Xen does not expect one and refuses the stream");
      return std::move(report_);
    }
    QemuSection conf;
    conf.type = kQemuConfiguration;
    std::size_t next = 0;
    if (!end_of_payload(pos + 5 + n, conf, next)) return std::move(report_);
    pos = next;
  }
  for (;;) {
    if (pos >= size) {
      add(5, pos, "the blob ends at " + hex(size) + " without an EOF marker");
      return std::move(report_);
    }
    const std::uint8_t t = byte(pos);
    switch (t) {
      case kQemuEof: {
        s.eof_offset = pos;
        const std::size_t rest = size - pos - 1;
        if (rest == 0) return std::move(report_);
        if (vmdescription_at(pos + 1)) {
          s.vmdescription_size = f_.u32(pos + 2);
          if (options_.xen_device_state) {
            add(8, pos + 1, "a VMDESCRIPTION follows EOF: xen-save-devices-state never writes one");
          }
          return std::move(report_);
        }
        s.trailing = rest;
        add(6, pos + 1, std::to_string(rest) + " octets after the EOF marker [" + hex(pos + 1) +
                            ", " + hex(size) + ") are not a VMDESCRIPTION");
        return std::move(report_);
      }
      case kQemuSectionStart:
      case kQemuSectionFull: {
        QemuSection sec;
        sec.type = t;
        sec.offset = pos;
        if (!fits(pos, 6)) {
          add(3, pos, std::string(qemu_token_name(t)) + ": the section header does not fit in the blob");
          return std::move(report_);
        }
        sec.section_id = f_.u32(pos + 1);
        const std::size_t n = byte(pos + 5);
        if (!fits(pos + 6, n + 8)) {
          add(3, pos, std::string(qemu_token_name(t)) + " section " + std::to_string(sec.section_id) +
                          ": the section header does not fit in the blob");
          return std::move(report_);
        }
        if (n == 0) {
          add(3, pos + 5, std::string(qemu_token_name(t)) + " section " +
                              std::to_string(sec.section_id) + ": empty idstr");
          return std::move(report_);
        }
        sec.idstr.assign(reinterpret_cast<const char*>(b_.data() + pos + 6), n);
        for (std::size_t i = 0; i < n; ++i) {
          if (!printable(byte(pos + 6 + i))) {
            add(3, pos + 6 + i, std::string(qemu_token_name(t)) + " section " +
                                    std::to_string(sec.section_id) + ": idstr octet " +
                                    std::to_string(i) + " is " + hex(byte(pos + 6 + i)) +
                                    ", not printable ASCII");
            return std::move(report_);
          }
        }
        sec.instance_id = f_.u32(pos + 6 + n);
        sec.version_id = f_.u32(pos + 6 + n + 4);
        sec.payload_offset = pos + 6 + n + 8;
        if (t == kQemuSectionStart) {
          if (open_.size() >= kMaxOpenSections) {
            add(3, pos, "more than " + std::to_string(kMaxOpenSections) + " open iterative sections");
            return std::move(report_);
          }
          open_.insert(sec.section_id);
          if (options_.xen_device_state) {
            warn_once(8, warned_shape_, pos,
                      "SECTION_START \"" + sec.idstr +
                          "\": an iterative section, xen-save-devices-state writes only SECTION_FULL");
          }
        }
        if (seen_.size() < options_.max_sections_listed) {
          if (!seen_.emplace(sec.idstr, sec.instance_id).second) {
            warn_once(9, warned_dup_, pos,
                      "section \"" + sec.idstr + "\" instance " + std::to_string(sec.instance_id) +
                          " is sent a second time");
          }
        }
        std::size_t next = 0;
        if (!end_of_payload(sec.payload_offset, sec, next)) return std::move(report_);
        if (sec.footer && options_.xen_device_state) {
          add(7, sec.payload_offset + sec.payload_size,
              "section \"" + sec.idstr + "\" ends with a section footer: QEMU under Xen runs "
              "with footers off and refuses the stream");
          return std::move(report_);
        }
        pos = next;
        note_section(std::move(sec));
        break;
      }
      case kQemuSectionPart:
      case kQemuSectionEnd: {
        QemuSection sec;
        sec.type = t;
        sec.offset = pos;
        if (!fits(pos, 5)) {
          add(3, pos, std::string(qemu_token_name(t)) + ": the section id does not fit in the blob");
          return std::move(report_);
        }
        sec.section_id = f_.u32(pos + 1);
        if (!open_.contains(sec.section_id)) {
          add(4, pos + 1, std::string(qemu_token_name(t)) + " for section " +
                              std::to_string(sec.section_id) + ", which no SECTION_START opened");
          return std::move(report_);
        }
        if (t == kQemuSectionEnd) open_.erase(sec.section_id);
        if (options_.xen_device_state) {
          warn_once(8, warned_shape_, pos,
                    std::string(qemu_token_name(t)) +
                        ": an iterative section, xen-save-devices-state writes only SECTION_FULL");
        }
        sec.payload_offset = pos + 5;
        std::size_t next = 0;
        if (!end_of_payload(sec.payload_offset, sec, next)) return std::move(report_);
        if (sec.footer && options_.xen_device_state) {
          add(7, sec.payload_offset + sec.payload_size,
              "section " + std::to_string(sec.section_id) + " ends with a section footer: QEMU "
              "under Xen runs with footers off and refuses the stream");
          return std::move(report_);
        }
        pos = next;
        note_section(std::move(sec));
        break;
      }
      case kQemuCommand: {
        if (!fits(pos, 5) || !fits(pos + 5, f_.u16(pos + 3))) {
          add(3, pos, "COMMAND: the command does not fit in the blob");
          return std::move(report_);
        }
        ++s.commands;
        if (options_.xen_device_state) {
          warn_once(8, warned_shape_, pos,
                    "COMMAND " + std::to_string(f_.u16(pos + 1)) +
                        ": xen-save-devices-state never writes commands");
        }
        pos += 5 + std::size_t{f_.u16(pos + 3)};
        break;
      }
      case kQemuSectionFooter:
        add(4, pos, "a section footer outside any section");
        return std::move(report_);
      case kQemuConfiguration:
        add(3, pos, "CONFIGURATION must be the first token after the header");
        return std::move(report_);
      case kQemuVmDescription:
        add(3, pos, "VMDESCRIPTION before the EOF marker");
        return std::move(report_);
      default:
        add(3, pos, "unknown token type " + hex(t));
        return std::move(report_);
    }
  }
}

}  // namespace

std::string_view qemu_token_name(std::uint8_t type) {
  switch (type) {
    case kQemuEof: return "EOF";
    case kQemuSectionStart: return "SECTION_START";
    case kQemuSectionPart: return "SECTION_PART";
    case kQemuSectionEnd: return "SECTION_END";
    case kQemuSectionFull: return "SECTION_FULL";
    case 0x05: return "SUBSECTION";
    case kQemuVmDescription: return "VMDESCRIPTION";
    case kQemuConfiguration: return "CONFIGURATION";
    case kQemuCommand: return "COMMAND";
    case kQemuSectionFooter: return "SECTION_FOOTER";
    default: return "UNKNOWN";
  }
}

QemuStateReport check_qemu_state(Bytes blob, std::uint64_t file_offset,
                                 const QemuWalkOptions& options) {
  return Walker(blob, file_offset, options).run();
}

Expected<QemuStateSummary> walk_qemu_state(Bytes blob, std::uint64_t file_offset,
                                           const QemuWalkOptions& options) {
  QemuStateReport r = check_qemu_state(blob, file_offset, options);
  if (!r.ok()) return first_error(r.findings, "QEMU state");
  return std::move(r.summary);
}

std::span<const RuleInfo> qemu_state_rules() { return kRules; }

}  // namespace xenstream::blobs
