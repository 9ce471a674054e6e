// Names of record types, generated from format/record_types.def.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xenstream {

enum class Layer : std::uint8_t { kLibxl, kLibxc };

std::string_view layer_name(Layer layer);  // "libxl" / "libxc"

// Spec name ("PAGE_DATA"), or nullopt for an unknown type. The optional bit
// is not stripped: 0x80000001 is unknown.
std::optional<std::string_view> record_spec_name(Layer layer, std::uint32_t type);
// JSON name ("page_data"), or nullopt for an unknown type.
std::optional<std::string_view> record_json_name(Layer layer, std::uint32_t type);
// Spec name, or "UNKNOWN_0x13" / "OPTIONAL_0x80000010" for display.
std::string record_display_name(Layer layer, std::uint32_t type);

}  // namespace xenstream
