#include <xenstream/libstream/record_names.h>

#include <xenstream/libstream/error.h>

namespace xenstream {
namespace {

struct Names {
  std::uint32_t type;
  std::string_view spec;
  std::string_view json;
};

constexpr Names kLibxc[] = {
#define LIBXC_RECORD(name, value, spec, json) {value, spec, json},
#include <xenstream/libstream/format/record_types.def>
#undef LIBXC_RECORD
};
constexpr Names kLibxl[] = {
#define LIBXL_RECORD(name, value, spec, json) {value, spec, json},
#include <xenstream/libstream/format/record_types.def>
#undef LIBXL_RECORD
};

const Names* find(Layer layer, std::uint32_t type) {
  if (layer == Layer::kLibxc) {
    for (const auto& n : kLibxc) if (n.type == type) return &n;
  } else {
    for (const auto& n : kLibxl) if (n.type == type) return &n;
  }
  return nullptr;
}

}  // namespace

std::string_view layer_name(Layer layer) { return layer == Layer::kLibxl ? "libxl" : "libxc"; }

std::optional<std::string_view> record_spec_name(Layer layer, std::uint32_t type) {
  if (const Names* n = find(layer, type)) return n->spec;
  return std::nullopt;
}

std::optional<std::string_view> record_json_name(Layer layer, std::uint32_t type) {
  if (const Names* n = find(layer, type)) return n->json;
  return std::nullopt;
}

std::string record_display_name(Layer layer, std::uint32_t type) {
  if (const Names* n = find(layer, type)) return std::string(n->spec);
  return (type & 0x80000000u ? "OPTIONAL_" : "UNKNOWN_") + hex(type);
}

}  // namespace xenstream
