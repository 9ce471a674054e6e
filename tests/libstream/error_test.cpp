// The error model's formatting helpers: hex() and printable(), which every
// message that echoes input octets goes through.
#include <gtest/gtest.h>

#include <string>

#include <xenstream/libstream/error.h>

namespace xenstream {
namespace {

TEST(Hex, PrefixedOnce) {
  EXPECT_EQ(hex(0), "0x0");
  EXPECT_EQ(hex(0x82), "0x82");
  EXPECT_EQ(hex(~std::uint64_t{0}), "0xffffffffffffffff");
}

TEST(Printable, PlainTextUnchanged) { EXPECT_EQ(printable("Xen saved domain, xl format"), "Xen saved domain, xl format"); }

TEST(Printable, NewlineAndNulAreNamed) {
  EXPECT_EQ(printable(std::string("go\n\0!", 5)), "go\\n\\0!");
}

TEST(Printable, QuotesAndBackslashAreEscaped) {
  // A quote inside an echo would end it early; these three never appear bare.
  EXPECT_EQ(printable("a'b\"c\\d"), "a\\x27b\\x22c\\x5cd");
}

TEST(Printable, OtherOctetsAreHex) {
  EXPECT_EQ(printable(std::string("\x01\x1f\x7f\x80\xff", 5)), "\\x01\\x1f\\x7f\\x80\\xff");
}

}  // namespace
}  // namespace xenstream
