// One error model for the whole toolkit (spec/README.md, "Errors").
//
// The library never throws across its API: fallible calls return
// Expected<T>. An Error says what kind of failure it is (ErrorCode), where it
// happened (absolute byte offset in the input, optionally a half-open byte
// range, the record index and type when known) and a message written for an
// operator. Context is added as the error travels up with with_context(),
// which keeps the inner text.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace xenstream {

enum class ErrorCode {
  kTruncated,    // the input ended before a structure was complete
  kMalformed,    // the input is present but wrong
  kUnsupported,  // well-formed, but this toolkit (or Xen) cannot handle it
  kLimit,        // a length or count exceeds a configured resource cap
  kIo,           // the operating system refused a read or write
  kUsage,        // the caller asked for something impossible
};

std::string_view error_code_name(ErrorCode code);

struct ByteRange {
  std::uint64_t begin = 0;  // inclusive
  std::uint64_t end = 0;    // exclusive
};

struct Error {
  ErrorCode code = ErrorCode::kMalformed;
  std::uint64_t offset = 0;            // absolute offset in the input stream
  std::optional<ByteRange> range;      // bytes involved, half-open
  std::optional<std::uint64_t> record_index;
  std::optional<std::uint32_t> record_type;
  std::string message;

  // Prepends "context: " to the message and returns *this, so that a caller
  // can write `return std::move(err).with_context("record 12")`.
  Error&& with_context(std::string_view context) &&;
  Error& with_context(std::string_view context) &;

  // "offset 0x1a2b: <message>", the form every tool prints.
  std::string describe() const;
};

// Convenience constructors. Messages are part of the contract: tests compare
// them exactly.
Error make_error(ErrorCode code, std::uint64_t offset, std::string message);
Error truncated_error(std::uint64_t offset, std::uint64_t want_end,
                      std::string_view what);
Error io_error(std::string_view what, int errno_value);

// Formats a value as 0x-prefixed lowercase hex.
std::string hex(std::uint64_t value);

// Shows octets taken from the input inside a message, safely and without
// ambiguity: printable ASCII stays as it is; newline and NUL become \n and
// \0; every other octet, and the backslash and both quote characters, become
// \xNN. Text between quotes in a message therefore never contains a bare
// quote, so a reader (or a fuzz invariant) can tell echoed input from ours.
std::string printable(std::string_view octets);

// Minimal std::expected stand-in (C++20 has none). Holds a T or an Error.
template <typename T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Expected(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  Error& error() & { return std::get<1>(v_); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  Expected(Error error) : error_(std::move(error)) {}

  bool has_value() const { return !error_.has_value(); }
  explicit operator bool() const { return has_value(); }

  Error& error() & { return *error_; }
  const Error& error() const& { return *error_; }
  Error&& error() && { return std::move(*error_); }

 private:
  std::optional<Error> error_;
};

}  // namespace xenstream

// Propagates the error of an Expected expression; evaluates to nothing.
#define XS_TRY(expr)                                      \
  do {                                                    \
    auto xs_try_result_ = (expr);                         \
    if (!xs_try_result_) return std::move(xs_try_result_).error(); \
  } while (0)
