#include "tools/restore/manifest.h"

#include <xenstream/libstream/fields.h>
#include <xenstream/libstream/format/libxc.h>
#include "tools/restore/names.h"

namespace xenstream::restore {

using nlohmann::json;

std::string vcpu_file_name(std::uint32_t vcpu_id, VcpuRecord kind) {
  return "vcpu" + std::to_string(vcpu_id) + "-" + std::string(vcpu_record_name(kind)) + ".bin";
}

std::string emulator_file_name(std::uint32_t domid) {
  return "qemu-resume." + std::to_string(domid);
}

std::string policy_file_name(CpuPolicy kind) {
  return kind == CpuPolicy::kCpuid ? "cpuid-policy.bin" : "msr-policy.bin";
}

std::string config_file_name(const ContainerInfo& c) {
  if (c.xl && c.xl->config_len && *c.xl->config_len > 0) {
    return c.xl->json() ? "xl-config.json" : "xl-config.cfg";
  }
  if (c.libvirt && c.libvirt->xml_len > 0) return "libvirt.xml";
  return "";
}

std::optional<std::set<std::uint32_t>> hvm_context_cpus(Bytes blob) {
  const Fields f(blob, ByteOrder::kLittle, 0);
  std::set<std::uint32_t> cpus;
  std::size_t pos = 0;
  while (f.fits(pos, 8)) {
    const std::uint16_t code = f.u16(pos);
    const std::uint16_t instance = f.u16(pos + 2);
    const std::uint32_t length = f.u32(pos + 4);
    if (code == 0) return cpus;  // END
    if (!f.fits(pos + 8, length)) return std::nullopt;
    if (code == 2) cpus.insert(instance);
    pos += 8 + std::size_t{length};
  }
  return std::nullopt;  // no END descriptor
}

json xenstore_json(const DomainState& s) {
  json keys = json::object();
  for (const auto& [k, v] : s.xenstore) keys[k] = v;
  json out = {{"keys", keys}};
  if (s.xenstore_ids) {
    out["emulator_id"] = s.xenstore_ids->first;
    out["index"] = s.xenstore_ids->second;
  }
  return out;
}

namespace {

json file_entry(const std::string& name, std::uint64_t size) {
  return {{"file", name}, {"size", size}};
}

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::kComplete: return "complete";
    case Outcome::kFailover: return "failover";
    case Outcome::kRejected: return "rejected";
  }
  return "unknown";
}

json error_json(const Error& e) {
  json out = {{"code", std::string(error_code_name(e.code))},
              {"offset", e.offset},
              {"message", e.message}};
  if (e.range) out["range"] = {e.range->begin, e.range->end};
  return out;
}

}  // namespace

json build_manifest(const ManifestInput& in) {
  const DomainInfo& info = *in.info;
  const DomainState& s = *in.state;
  const PageMap& pages = *in.pages;
  const StreamFacts& facts = *in.facts;
  json m;
  m["format"] = "xenstream-restored-domain";
  m["version"] = kManifestVersion;
  m["status"] = in.status;

  json source = {
      {"container", std::string(container_name(info.container.kind))},
      {"payload", std::string(payload_name(info.container.payload))},
      {"compressed", info.compressed},
      {"libxc_version", info.image.version},
      {"byte_order", info.image.order() == ByteOrder::kBig ? "big" : "little"},
  };
  if (info.libxl) source["libxl_version"] = info.libxl->version;
  m["source"] = source;

  const auto& d = info.domain;
  m["domain"] = {
      {"type", d.is_hvm() ? "hvm" : d.is_pv() ? "pv" : "unknown"},
      {"domid", info.domid},
      {"page_shift", d.page_shift},
      {"xen_version", std::to_string(d.xen_major) + "." + std::to_string(d.xen_minor)},
      {"xen_major", d.xen_major},
      {"xen_minor", d.xen_minor},
      // xen_major 0 marks a stream made by the legacy converter.
      {"converted_from_legacy", d.xen_major == 0},
  };

  // Memory: present ranges, counts by type, and runs of every type other
  // than NOTAB (page tables, XTAB, BROKEN, XALLOC) so that a writer can
  // reproduce the PFINFO types.
  json mem;
  mem["file"] = kMemoryName;
  mem["page_size"] = format::libxc::kPageSize;
  mem["size"] = pages.populated_end() * format::libxc::kPageSize;
  mem["pages_present"] = pages.count_populated();
  json ranges = json::array();
  for (const auto& r : pages.runs(PageMap::kPopulated)) ranges.push_back({r.begin, r.end});
  mem["pfn_ranges"] = ranges;
  json by_type = json::object();
  const auto counts = pages.count_by_type();
  for (unsigned t = 0; t < 16; ++t) {
    if (counts[t] != 0) by_type[page_type_name(t)] = counts[t];
  }
  mem["pages_by_type"] = by_type;
  json typed = json::array();
  for (const auto& r : pages.runs(PageMap::kSeen | PageMap::kTypeMask)) {
    const unsigned t = r.value & PageMap::kTypeMask;
    if (t != 0) typed.push_back({r.begin, r.end, page_type_name(t)});
  }
  mem["typed_ranges"] = typed;
  m["memory"] = mem;

  // vCPUs: PV streams carry one set of records per vCPU; HVM streams carry
  // them inside the HVM context.
  json vcpus;
  if (d.is_pv()) {
    json ids = json::array();
    json recs = json::object();
    for (const auto& [id, blobs] : s.vcpus) {
      ids.push_back(id);
      json r = json::object();
      for (unsigned k = 0; k < 4; ++k) {
        if (blobs[k]) {
          const auto kind = static_cast<VcpuRecord>(k);
          r[std::string(vcpu_record_name(kind))] = file_entry(vcpu_file_name(id, kind), *blobs[k]);
        }
      }
      recs[std::to_string(id)] = r;
    }
    vcpus = {{"count", s.vcpus.size()}, {"ids", ids}, {"records", recs}, {"source", "vcpu_records"}};
  } else if (s.hvm_context_vcpus) {
    json ids = *s.hvm_context_vcpus;
    vcpus = {{"count", s.hvm_context_vcpus->size()}, {"ids", ids}, {"source", "hvm_context"}};
  } else {
    vcpus = {{"count", nullptr}, {"source", s.hvm_context_size ? "hvm_context" : "none"}};
  }
  m["vcpus"] = vcpus;

  if (d.is_hvm()) {
    json hvm;
    hvm["context"] = s.hvm_context_size ? file_entry(kHvmContextName, *s.hvm_context_size) : json();
    json params = json::object();
    for (const auto& [index, value] : s.hvm_params) params[hvm_param_name(index)] = value;
    hvm["params"] = params;
    json by_index = json::object();
    for (const auto& [index, value] : s.hvm_params) by_index[std::to_string(index)] = value;
    hvm["params_by_index"] = by_index;
    m["hvm"] = hvm;
  }
  if (d.is_pv()) {
    json pv;
    if (s.pv_info) {
      pv["guest_width"] = s.pv_info->guest_width;
      pv["pt_levels"] = s.pv_info->pt_levels;
    }
    if (s.p2m) {
      pv["p2m_frames"] = {{"file", kP2mFramesName},
                          {"start_pfn", s.p2m->start_pfn},
                          {"end_pfn", s.p2m->end_pfn},
                          {"frames", s.p2m->frames},
                          {"records", s.p2m->records}};
    }
    pv["shared_info"] = s.shared_info_size ? file_entry(kSharedInfoName, *s.shared_info_size) : json();
    m["pv"] = pv;
  }
  if (s.tsc) {
    m["tsc"] = {{"mode", s.tsc->mode},
                {"mode_name", tsc_mode_name(s.tsc->mode)},
                {"khz", s.tsc->khz},
                {"nsec", s.tsc->nsec},
                {"incarnation", s.tsc->incarnation}};
  } else {
    m["tsc"] = nullptr;
  }
  json policy = json::object();
  for (unsigned k = 0; k < 2; ++k) {
    const auto kind = static_cast<CpuPolicy>(k);
    if (s.policies[k]) policy[k == 0 ? "cpuid" : "msr"] = file_entry(policy_file_name(kind), *s.policies[k]);
  }
  m["cpu_policy"] = policy;
  m["static_data_end"] = s.static_data_end;

  json emu = json::object();
  if (s.emulator) {
    emu["context"] = {{"file", emulator_file_name(info.domid)},
                      {"emulator_id", s.emulator->id},
                      {"index", s.emulator->index},
                      {"size", s.emulator->size},
                      {"records", s.emulator->records}};
  }
  if (s.xenstore_records > 0) {
    emu["xenstore"] = {{"file", kXenstoreName},
                       {"keys", s.xenstore.size()},
                       {"records", s.xenstore_records}};
  }
  m["emulator"] = emu;

  m["checkpoints"] = {{"checkpointed", facts.checkpointed},
                      {"committed", in.checkpoints},
                      {"colo", facts.colo}};
  const std::string config = config_file_name(info.container);
  m["config"] = config.empty() ? json() : json{{"file", config}};

  json files = json::array();
  for (const auto& f : s.files) files.push_back(f);
  m["files"] = files;

  json stream = {{"offset", facts.stream_offset}};
  json skipped = json::array();
  for (const auto& r : facts.skipped) {
    skipped.push_back({{"layer", std::string(layer_name(r.layer))},
                       {"type", r.type},
                       {"name", record_display_name(r.layer, r.type)},
                       {"count", r.count}});
  }
  stream["skipped_records"] = skipped;
  if (facts.verify_pages > 0) {
    stream["verify"] = {{"pages", facts.verify_pages}, {"mismatches", facts.verify_mismatches}};
  }
  m["stream"] = stream;

  if (in.finish != nullptr) {
    const FinishInfo& fin = *in.finish;
    json end = {{"outcome", outcome_name(fin.outcome)}};
    end["reason"] = fin.reason ? error_json(*fin.reason) : json();
    if (fin.rule) {
      end["rule"] = {{"id", fin.rule->rule},
                     {"offset", fin.rule->offset},
                     {"where", fin.rule->where},
                     {"message", fin.rule->message}};
      end["checkpoint"] = fin.checkpoints;
    }
    end["warnings"] = fin.warnings;
    m["end"] = end;
    if (fin.replay) {
      const ReplayRecord& r = *fin.replay;
      json rep = {{"ok", r.ok},
                  {"command", r.command},
                  {"running", r.running},
                  {"log", r.log_file},
                  {"message", r.message}};
      rep["pid"] = r.pid ? json(*r.pid) : json();
      rep["qmp"] = r.qmp_socket.empty() ? json() : json(r.qmp_socket);
      m["emulator_replay"] = rep;
    }
  }
  return m;
}

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace xenstream::restore
