#include "tools/verify/report.h"

#include <cstdio>
#include <sstream>

#include <xenstream/libstream/blobs/hvm_context.h>
#include <xenstream/libstream/blobs/qemu_state.h>

namespace xenstream::verify {

namespace {

using nlohmann::json;

constexpr std::string_view kParamNames[] = {
    "CALLBACK_IRQ", "STORE_PFN", "STORE_EVTCHN", "", "PAE_ENABLED", "IOREQ_PFN", "BUFIOREQ_PFN", "",
    "", "VIRIDIAN", "TIMER_MODE", "HPET_ENABLED", "IDENT_PT", "DM_DOMAIN", "ACPI_S_STATE",
    "VM86_TSS", "VPT_ALIGN", "CONSOLE_PFN", "CONSOLE_EVTCHN", "ACPI_IOPORTS_LOCATION",
    "MEMORY_EVENT_CR0", "MEMORY_EVENT_CR3", "MEMORY_EVENT_CR4", "MEMORY_EVENT_INT3", "NESTEDHVM",
    "MEMORY_EVENT_SINGLE_STEP", "BUFIOREQ_EVTCHN", "PAGING_RING_PFN", "MONITOR_RING_PFN",
    "SHARING_RING_PFN", "MEMORY_EVENT_MSR", "TRIPLE_FAULT_REASON", "IOREQ_SERVER_PFN",
    "NR_IOREQ_SERVER_PAGES", "VM_GENERATION_ID_ADDR", "ALTP2M", "X87_FIP_WIDTH", "VM86_TSS_SIZED",
    "MCA_CAP",
};

constexpr std::string_view kPageTypes[16] = {
    "NOTAB", "L1TAB", "L2TAB", "L3TAB", "L4TAB", "INVALID_5", "INVALID_6", "INVALID_7",
    "INVALID_8", "L1TAB_PINNED", "L2TAB_PINNED", "L3TAB_PINNED", "L4TAB_PINNED", "BROKEN", "XALLOC",
    "XTAB",
};

std::string emulator_name(std::uint32_t id) {
  switch (id) {
    case 0: return "unknown (legacy converter)";
    case 1: return "qemu-traditional";
    case 2: return "qemu-upstream";
    default: return "reserved id " + std::to_string(id);
  }
}

std::string human_size(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

// "0-3, 5, 7-8"
std::string ranges(const std::vector<std::uint32_t>& ids) {
  std::string out;
  for (std::size_t i = 0; i < ids.size();) {
    std::size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (!out.empty()) out += ", ";
    out += std::to_string(ids[i]);
    if (j > i) out += "-" + std::to_string(ids[j]);
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

std::string domain_type_name(std::uint32_t t) {
  return t == 1 ? "x86 PV" : t == 2 ? "x86 HVM" : "unknown type " + hex(t);
}

std::string order_name(bool big) { return big ? "big-endian" : "little-endian"; }

void line(std::ostringstream& o, std::string_view label, const std::string& text) {
  std::string l(label);
  l += ':';
  if (l.size() < 14) l.resize(14, ' ');
  else l += ' ';
  o << l << text << '\n';
}

json qemu_json(const blobs::QemuStateSummary& q) {
  json j;
  j["version"] = q.version;
  j["configuration"] = q.configuration;
  j["machine_type"] = q.configuration ? json(q.machine_type) : json(nullptr);
  j["sections_total"] = q.sections_total;
  j["footers"] = q.footers;
  j["commands"] = q.commands;
  j["eof_offset"] = q.eof_offset ? json(*q.eof_offset) : json(nullptr);
  j["vmdescription_size"] = q.vmdescription_size ? json(*q.vmdescription_size) : json(nullptr);
  j["trailing"] = q.trailing;
  json secs = json::array();
  for (const auto& s : q.sections) {
    secs.push_back({{"type", blobs::qemu_token_name(s.type)},
                    {"section_id", s.section_id},
                    {"idstr", s.idstr},
                    {"instance_id", s.instance_id},
                    {"version_id", s.version_id},
                    {"offset", s.offset},
                    {"payload_offset", s.payload_offset},
                    {"payload_size", s.payload_size},
                    {"footer", s.footer}});
  }
  j["sections"] = std::move(secs);
  return j;
}

}  // namespace

std::optional<std::string_view> hvm_param_name(std::uint64_t index) {
  if (index < std::size(kParamNames) && !kParamNames[index].empty()) return kParamNames[index];
  return std::nullopt;
}

std::string_view page_type_name(unsigned nibble) { return kPageTypes[nibble & 0xF]; }

std::string format_summary(const Summary& s) {
  std::ostringstream o;
  line(o, "Input", s.input + (s.compressed ? " (zstd-compressed)" : "") + ", " +
                       std::to_string(s.bytes) + " octets walked (" + human_size(s.bytes) + ")");
  if (s.container) {
    const ContainerInfo& c = *s.container;
    std::string t;
    if (c.xl) {
      const XlHeaderInfo& h = *c.xl;
      t = "xl save header, written " + order_name(h.order == ByteOrder::kBig) +
          ", mandatory_flags " + hex(h.mandatory_flags) + " (" + (h.json() ? "JSON" : "text config") +
          (h.stream_v2() ? ", STREAMv2" : ", legacy stream") + "), optional_flags " +
          hex(h.optional_flags) + ", " + std::to_string(h.optional_data_len) +
          " octets of optional data";
    } else if (c.libvirt) {
      t = "libvirt-libxl save header, version " + std::to_string(c.libvirt->version) + ", " +
          std::to_string(c.libvirt->xml_len) + " octets of XML";
    } else {
      t = "none";
    }
    t += "; payload: " + std::string(payload_name(c.payload)) + " at " + hex(c.payload_offset);
    line(o, "Container", t);
    const std::string* text = c.xl ? &c.xl->config : c.libvirt ? &c.libvirt->xml : nullptr;
    if (text != nullptr && !text->empty()) {
      std::string head = s.config ? s.config->source : std::string("config");
      head += ", " + std::to_string(text->size()) + " octets";
      if (s.config) {
        if (s.config->name) head += ", name \"" + *s.config->name + "\"";
        if (s.config->guest_type) head += ", type " + *s.config->guest_type;
        if (s.config->max_vcpus) head += ", max_vcpus " + std::to_string(*s.config->max_vcpus);
      }
      line(o, "Config", head);
      std::istringstream in(std::string(text->c_str()));
      std::string l;
      int n = 0;
      while (std::getline(in, l)) {
        if (++n > 200) {
          o << "    ... (" << text->size() << " octets in all; --json has the whole config)\n";
          break;
        }
        o << "    " << l << '\n';
      }
    }
  }
  if (s.libxl) {
    line(o, "libxl header", "version " + std::to_string(s.libxl->version) + ", options " +
                                hex(s.libxl->options) + " (" +
                                order_name(s.libxl->order() == ByteOrder::kBig) +
                                (s.libxl->legacy() ? ", converted from a legacy image" : "") + ")");
  }
  if (s.image) {
    line(o, "libxc image", "version " + std::to_string(s.image->version) + ", options " +
                               hex(s.image->options) + " (" +
                               order_name(s.image->order() == ByteOrder::kBig) + ")");
  }
  if (s.domain) {
    line(o, "Domain", domain_type_name(s.domain->type) + ", page_shift " +
                          std::to_string(s.domain->page_shift) + ", " +
                          (s.domain->xen_major == 0
                               ? "converted from a legacy image (converter version " +
                                     std::to_string(s.domain->xen_minor) + ")"
                               : "saved by Xen " + std::to_string(s.domain->xen_major) + "." +
                                     std::to_string(s.domain->xen_minor)));
    line(o, "Guest type", s.guest_type);
  }
  line(o, "Records", std::to_string(s.records) + " in all");
  auto counts = [&](const char* layer, const std::map<std::string, std::uint64_t>& m) {
    if (m.empty()) return;
    std::string t;
    for (const auto& [name, n] : m) t += (t.empty() ? "" : ", ") + name + " " + std::to_string(n);
    o << "  " << layer << ": " << t << '\n';
  };
  counts("libxl", s.libxl_records);
  counts("libxc", s.libxc_records);
  if (s.page_entries > 0) {
    std::string t = std::to_string(s.page_entries) + " PAGE_DATA entries:";
    bool first = true;
    for (unsigned i = 0; i < 16; ++i) {
      if (s.pages_by_type[i] == 0) continue;
      t += (first ? " " : ", ") + std::string(page_type_name(i)) + " " +
           std::to_string(s.pages_by_type[i]);
      first = false;
    }
    line(o, "Pages", t);
    o << "  pfn range [" << hex(s.pfn_min.value_or(0)) << ", " << hex(s.pfn_max.value_or(0))
      << "]; " << s.data_pfns << " distinct pfns sent with data, " << s.data_pfns_sent_again
      << " of them more than once\n";
    o << "  pfn tracking: " << human_size(s.pfn_tracking_bytes) << " of a "
      << human_size(s.pfn_tracking_cap) << " cap"
      << (s.pfn_tracking_capped ? "; CAPPED: the counts above are lower bounds" : "") << '\n';
  }
  if (s.pv_info || s.max_pfn || !s.pv_vcpus.empty()) {
    std::string t;
    if (s.pv_info) {
      t = std::to_string(s.pv_info->first * 8) + "-bit guest, " + std::to_string(s.pv_info->second) +
          " page-table levels";
    }
    if (s.max_pfn) t += (t.empty() ? "" : ", ") + std::string("max_pfn ") + hex(*s.max_pfn);
    line(o, "PV", t);
    line(o, "vCPUs", std::to_string(s.pv_vcpus.size()) + " with a basic context: " + ranges(s.pv_vcpus));
  }
  if (s.hvm_context) {
    const auto& h = *s.hvm_context;
    line(o, "vCPUs", std::to_string(h.vcpus) + " (CPU entries in the HVM context)");
  }
  if (s.tsc) {
    line(o, "TSC", "mode " + std::to_string(s.tsc->mode) + ", " + std::to_string(s.tsc->khz) +
                       " kHz, " + std::to_string(s.tsc->nsec) + " ns elapsed, incarnation " +
                       std::to_string(s.tsc->incarnation));
  }
  if (s.cpuid_leaves || s.msr_entries) {
    line(o, "CPU policy", std::to_string(s.cpuid_leaves.value_or(0)) + " CPUID leaves, " +
                              std::to_string(s.msr_entries.value_or(0)) + " MSR entries");
  }
  if (!s.hvm_params.empty()) {
    line(o, "HVM params", std::to_string(s.hvm_params.size()));
    for (const auto& [index, value] : s.hvm_params) {
      auto name = hvm_param_name(index);
      o << "  " << (name ? std::string(*name) : "param") << " (" << index << ") = " << hex(value)
        << '\n';
    }
  }
  if (s.hvm_context) {
    const auto& h = *s.hvm_context;
    std::string t = std::to_string(h.entries) + " entries";
    if (h.header_valid) {
      t += "; header: cpuid " + hex(h.cpuid) + ", gtsc_khz " + std::to_string(h.gtsc_khz) +
           ", changeset " + hex(h.changeset);
    }
    line(o, "HVM context", t);
    std::string kinds;
    for (std::uint16_t c = 1; c <= blobs::kHvmCodeMax; ++c) {
      if (h.count_by_code[c] == 0) continue;
      kinds += (kinds.empty() ? "" : ", ") + std::string(*blobs::hvm_typecode_name(c)) + " " +
               std::to_string(h.count_by_code[c]);
    }
    if (!kinds.empty()) o << "  " << kinds << '\n';
  }
  if (s.emulators_total > 0) {
    line(o, "Emulators", std::to_string(s.emulators_total) + " record(s)");
    for (const auto& e : s.emulators) {
      o << "  record #" << e.record_index << " " << e.record << " at " << hex(e.offset) << ": "
        << emulator_name(e.id) << ", index " << e.index << ", " << e.size << " octets";
      if (e.checkpoint > 0) o << ", checkpoint " << e.checkpoint;
      if (e.record == "EMULATOR_XENSTORE_DATA") o << ", " << e.xenstore_pairs << " pairs";
      o << '\n';
      if (e.qemu && e.qemu->version != 0) {
        const auto& q = *e.qemu;
        o << "    QEMU state v" << q.version << ": " << q.sections_total
          << (q.sections_total == 1 ? " section, " : " sections, ")
          << (q.footers ? std::to_string(q.footers) + " footers" : std::string("no footers"))
          << (q.configuration ? ", machine \"" + q.machine_type + "\"" : std::string())
          << (q.eof_offset ? ", EOF at blob offset " + hex(*q.eof_offset) : std::string(", no EOF"))
          << '\n';
        std::size_t n = 0;
        for (const auto& sec : q.sections) {
          if (++n > 100) {
            o << "      ... (" << q.sections_total << " in all; --json lists them)\n";
            break;
          }
          o << "      " << blobs::qemu_token_name(sec.type) << " id " << sec.section_id;
          if (!sec.idstr.empty()) {
            o << " \"" << sec.idstr << "\" instance " << sec.instance_id << " version "
              << sec.version_id;
          }
          o << ", " << sec.payload_size << " octets\n";
        }
      }
    }
  }
  if (!s.xenstore.empty()) {
    line(o, "Xenstore", std::to_string(s.xenstore.size()) + " pairs (last EMULATOR_XENSTORE_DATA)");
    for (const auto& [k, v] : s.xenstore) o << "  " << k << " = " << v << '\n';
  }
  if (s.checkpoints > 0) {
    std::string t = std::to_string(s.checkpoints) + " CHECKPOINT records, " +
                    std::to_string(s.committed) + " committed";
    line(o, "Checkpoints", t);
    std::string p;
    for (std::size_t i = 0; i < s.pages_per_checkpoint.size(); ++i) {
      p += (p.empty() ? "" : ", ") + std::to_string(s.pages_per_checkpoint[i]);
      if (i >= s.checkpoints) p += " (partial)";
    }
    o << "  pages per checkpoint: " << p << '\n';
  }
  if (s.verify_mode) line(o, "Verify mode", "on (a VERIFY record: later pages are compared, not written)");
  return o.str();
}

json to_json(const VerifyResult& r) {
  const Summary& s = r.summary;
  json j;
  j["schema"] = kJsonSchema;
  j["input"] = s.input;
  j["valid"] = r.valid();
  j["exit_status"] = r.exit_status();
  j["verdict"] = r.verdict();
  j["complete"] = r.complete;
  j["errors"] = r.errors;
  j["warnings"] = r.warnings;
  if (r.failure) {
    j["failure"] = {{"code", error_code_name(r.failure->code)},
                    {"offset", r.failure->offset},
                    {"message", r.failure->message}};
  } else {
    j["failure"] = nullptr;
  }
  json probs = json::array();
  for (const Problem& p : r.problems) {
    const RuleInfo* info = find_rule(p.rule);
    json q = {{"rule", p.rule},
              {"severity", severity_name(p.severity)},
              {"enforcement", info ? enforcement_name(info->enforcement) : "?"},
              {"offset", p.offset},
              {"where", p.where},
              {"message", p.message},
              {"text", p.format()}};
    q["record_index"] = p.record_index ? json(*p.record_index) : json(nullptr);
    q["record_type"] = p.record_type ? json(*p.record_type) : json(nullptr);
    q["layer"] = p.layer ? json(*p.layer) : json(nullptr);
    probs.push_back(std::move(q));
  }
  j["problems"] = std::move(probs);
  json sup = json::object();
  for (const auto& [rule, n] : r.suppressed) sup[std::string(rule)] = n;
  j["suppressed"] = std::move(sup);

  json sm;
  sm["compressed"] = s.compressed;
  sm["bytes"] = s.bytes;
  if (s.container) {
    const ContainerInfo& c = *s.container;
    json cj = {{"kind", container_name(c.kind)},
               {"payload", payload_name(c.payload)},
               {"payload_offset", c.payload_offset}};
    if (c.xl) {
      const XlHeaderInfo& h = *c.xl;
      cj["xl"] = {{"byteorder", h.byteorder},
                  {"big_endian_writer", h.order == ByteOrder::kBig},
                  {"mandatory_flags", h.mandatory_flags},
                  {"optional_flags", h.optional_flags},
                  {"optional_data_len", h.optional_data_len},
                  {"config_len", h.config_len ? json(*h.config_len) : json(nullptr)},
                  {"json", h.json()},
                  {"stream_v2", h.stream_v2()}};
    }
    if (c.libvirt) {
      cj["libvirt"] = {{"version", c.libvirt->version},
                       {"xml_len", c.libvirt->xml_len},
                       {"unused_zero", c.libvirt->unused_zero}};
    }
    sm["container"] = std::move(cj);
    const std::string* text = c.xl ? &c.xl->config : c.libvirt ? &c.libvirt->xml : nullptr;
    if (s.config || (text && !text->empty())) {
      json cf;
      cf["source"] = s.config ? json(s.config->source) : json(nullptr);
      cf["text"] = text ? json(std::string(text->c_str())) : json(nullptr);
      cf["guest_type"] = s.config && s.config->guest_type ? json(*s.config->guest_type) : json(nullptr);
      cf["name"] = s.config && s.config->name ? json(*s.config->name) : json(nullptr);
      cf["max_vcpus"] = s.config && s.config->max_vcpus ? json(*s.config->max_vcpus) : json(nullptr);
      sm["config"] = std::move(cf);
    } else {
      sm["config"] = nullptr;
    }
  } else {
    sm["container"] = nullptr;
    sm["config"] = nullptr;
  }
  sm["libxl_header"] = s.libxl ? json{{"version", s.libxl->version},
                                      {"options", s.libxl->options},
                                      {"big_endian", s.libxl->order() == ByteOrder::kBig},
                                      {"legacy", s.libxl->legacy()}}
                               : json(nullptr);
  sm["libxc_image_header"] = s.image ? json{{"version", s.image->version},
                                            {"options", s.image->options},
                                            {"big_endian", s.image->order() == ByteOrder::kBig}}
                                     : json(nullptr);
  sm["libxc_domain_header"] = s.domain ? json{{"type", s.domain->type},
                                              {"type_name", domain_type_name(s.domain->type)},
                                              {"page_shift", s.domain->page_shift},
                                              {"xen_major", s.domain->xen_major},
                                              {"xen_minor", s.domain->xen_minor},
                                              {"converted_from_legacy", s.domain->xen_major == 0}}
                                       : json(nullptr);
  sm["guest_type"] = s.guest_type;
  sm["records"] = {{"total", s.records}, {"libxl", s.libxl_records}, {"libxc", s.libxc_records}};
  json by_type = json::object();
  for (unsigned i = 0; i < 16; ++i) {
    if (s.pages_by_type[i] != 0) by_type[std::string(page_type_name(i))] = s.pages_by_type[i];
  }
  sm["pages"] = {{"entries", s.page_entries},
                 {"by_type", std::move(by_type)},
                 {"pfn_min", s.pfn_min ? json(*s.pfn_min) : json(nullptr)},
                 {"pfn_max", s.pfn_max ? json(*s.pfn_max) : json(nullptr)},
                 {"data_pfns", s.data_pfns},
                 {"data_pfns_sent_more_than_once", s.data_pfns_sent_again},
                 {"tracking", {{"capped", s.pfn_tracking_capped},
                               {"bytes", s.pfn_tracking_bytes},
                               {"cap_bytes", s.pfn_tracking_cap}}}};
  if (s.pv_info || s.max_pfn || !s.pv_vcpus.empty()) {
    sm["pv"] = {{"guest_width", s.pv_info ? json(s.pv_info->first) : json(nullptr)},
                {"pt_levels", s.pv_info ? json(s.pv_info->second) : json(nullptr)},
                {"max_pfn", s.max_pfn ? json(*s.max_pfn) : json(nullptr)},
                {"vcpus", s.pv_vcpus}};
  } else {
    sm["pv"] = nullptr;
  }
  sm["tsc"] = s.tsc ? json{{"mode", s.tsc->mode},
                           {"khz", s.tsc->khz},
                           {"nsec", s.tsc->nsec},
                           {"incarnation", s.tsc->incarnation}}
                    : json(nullptr);
  sm["cpuid_policy_leaves"] = s.cpuid_leaves ? json(*s.cpuid_leaves) : json(nullptr);
  sm["msr_policy_entries"] = s.msr_entries ? json(*s.msr_entries) : json(nullptr);
  json params = json::array();
  for (const auto& [index, value] : s.hvm_params) {
    auto name = hvm_param_name(index);
    params.push_back({{"index", index}, {"name", name ? json(*name) : json(nullptr)}, {"value", value}});
  }
  sm["hvm_params"] = std::move(params);
  if (s.hvm_context) {
    const auto& h = *s.hvm_context;
    json codes = json::object();
    for (std::uint16_t c = 1; c <= blobs::kHvmCodeMax; ++c) {
      if (h.count_by_code[c] != 0) codes[std::string(*blobs::hvm_typecode_name(c))] = h.count_by_code[c];
    }
    sm["hvm_context"] = {{"header_valid", h.header_valid},
                         {"magic", h.magic},
                         {"version", h.version},
                         {"changeset", h.changeset},
                         {"cpuid", h.cpuid},
                         {"gtsc_khz", h.gtsc_khz},
                         {"entries", h.entries},
                         {"vcpus", h.vcpus},
                         {"by_typecode", std::move(codes)},
                         {"end_offset", h.end_offset ? json(*h.end_offset) : json(nullptr)},
                         {"trailing", h.trailing}};
  } else {
    sm["hvm_context"] = nullptr;
  }
  json emus = json::array();
  for (const auto& e : s.emulators) {
    json ej = {{"record_index", e.record_index},
               {"offset", e.offset},
               {"record", e.record},
               {"emulator_id", e.id},
               {"emulator", emulator_name(e.id)},
               {"index", e.index},
               {"size", e.size},
               {"checkpoint", e.checkpoint}};
    ej["xenstore_pairs"] = e.record == "EMULATOR_XENSTORE_DATA" ? json(e.xenstore_pairs) : json(nullptr);
    ej["qemu"] = e.qemu ? qemu_json(*e.qemu) : json(nullptr);
    emus.push_back(std::move(ej));
  }
  sm["emulators"] = std::move(emus);
  sm["emulators_total"] = s.emulators_total;
  json xs = json::array();
  for (const auto& [k, v] : s.xenstore) xs.push_back({{"key", k}, {"value", v}});
  sm["xenstore"] = std::move(xs);
  sm["checkpoints"] = {{"count", s.checkpoints},
                       {"committed", s.committed},
                       {"pages_per_checkpoint", s.pages_per_checkpoint}};
  sm["verify_mode"] = s.verify_mode;
  j["summary"] = std::move(sm);
  return j;
}

}  // namespace xenstream::verify
