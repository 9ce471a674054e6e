#include <xenstream/libstream/error.h>

#include <cstring>
#include <cstdio>

namespace xenstream {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kTruncated: return "truncated";
    case ErrorCode::kMalformed: return "malformed";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kLimit: return "limit";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kUsage: return "usage";
  }
  return "unknown";
}

std::string hex(std::uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
  return buf;
}

std::string printable(std::string_view octets) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(octets.size());
  for (const char c : octets) {
    const auto u = static_cast<unsigned char>(c);
    if (u == '\n') {
      out += "\\n";
    } else if (u == 0) {
      out += "\\0";
    } else if (u >= 0x20 && u < 0x7F && u != '\\' && u != '\'' && u != '"') {
      out += c;
    } else {
      out += "\\x";
      out += kDigits[u >> 4];
      out += kDigits[u & 15];
    }
  }
  return out;
}

Error&& Error::with_context(std::string_view context) && {
  with_context(context);
  return std::move(*this);
}

Error& Error::with_context(std::string_view context) & {
  std::string joined(context);
  joined += ": ";
  joined += message;
  message = std::move(joined);
  return *this;
}

std::string Error::describe() const {
  return "offset " + hex(offset) + ": " + message;
}

Error make_error(ErrorCode code, std::uint64_t offset, std::string message) {
  Error e;
  e.code = code;
  e.offset = offset;
  e.message = std::move(message);
  return e;
}

Error truncated_error(std::uint64_t offset, std::uint64_t want_end,
                      std::string_view what) {
  Error e = make_error(ErrorCode::kTruncated, offset,
                       "unexpected end of data while reading " + std::string(what) +
                           " [" + hex(offset) + ", " + hex(want_end) + ")");
  e.range = ByteRange{offset, want_end};
  return e;
}

Error io_error(std::string_view what, int errno_value) {
  return make_error(ErrorCode::kIo, 0,
                    std::string(what) + ": " + std::strerror(errno_value));
}

}  // namespace xenstream
