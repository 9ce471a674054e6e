// Detecting the toolstack width and guest type (tools/convert/legacy_detect.h).
#include <gtest/gtest.h>

#include "tests/convert/legacy_builder.h"
#include "tests/convert/test_support.h"
#include "tools/convert/legacy_detect.h"

namespace xenstream::convert::testing {
namespace {

Detection detect(const Buffer& b, std::optional<unsigned> width = {}, std::optional<GuestType> guest = {}) {
  return detect_layout(Bytes(b).first(std::min(b.size(), kDetectHead)), width, guest);
}

TEST(Detect, EveryLayoutOfRealSavers) {
  for (unsigned w : {4u, 8u}) {
    for (GuestType g : {GuestType::kPv, GuestType::kHvm}) {
      for (bool tsc : {false, true}) {
        ScenarioOptions o;
        o.width = w;
        o.guest = g;
        o.tsc = tsc;
        o.qemu = g == GuestType::kPv ? QemuSig::kNone : QemuSig::kLibxl;
        const Scenario s = build_scenario(o);
        const Detection d = detect(s.bytes);
        ASSERT_TRUE(d.layout) << d.summary << "\n" << d.reason;
        EXPECT_EQ(d.layout->width, w);
        EXPECT_EQ(d.layout->guest, g);
        EXPECT_EQ(d.fitting.size(), 1u);
      }
    }
  }
}

TEST(Detect, ExplainsWhy) {
  ScenarioOptions o;
  o.tsc = false;
  o.pages = 30;
  const Scenario s = build_scenario(o);
  const Detection d = detect(s.bytes);
  ASSERT_TRUE(d.layout);
  EXPECT_EQ(d.summary, "64-bit toolstack, HVM guest");
  EXPECT_EQ(d.reason,
            "32-bit toolstack, PV guest: no: no all-ones extended-info marker at 0x4\n"
            "64-bit toolstack, PV guest: no: no all-ones extended-info marker at 0x8\n"
            "32-bit toolstack, HVM guest: no: the body would be empty (chunk id 0 at 0x4)\n"
            "64-bit toolstack, HVM guest: fits: octets 4-7 are zero (a 64-bit p2m size of 0x2e), and the first "
            "chunk at 0x8 is a page batch of 16 entries with HVM page types (16 checked)\n");

  o.guest = GuestType::kPv;
  o.qemu = QemuSig::kNone;
  o.width = 4;
  o.guest_width = 8;
  const Detection p = detect(build_scenario(o).bytes);
  ASSERT_TRUE(p.layout);
  EXPECT_NE(p.reason.find("32-bit toolstack, PV guest: fits: all-ones extended-info marker at 0x4 and a 'vcpu' "
                          "block at 0xc (64-bit guest)"),
            std::string::npos)
      << p.reason;
}

TEST(Detect, FlagsNarrowTheChoice) {
  ScenarioOptions o;
  const Scenario s = build_scenario(o);
  const Detection d = detect(s.bytes, 8u, std::nullopt);
  ASSERT_TRUE(d.layout);
  EXPECT_EQ(d.layout->guest, GuestType::kHvm);
  // Told it is PV, nothing fits.
  const Detection none = detect(s.bytes, std::nullopt, GuestType::kPv);
  EXPECT_FALSE(none.layout);
  EXPECT_EQ(none.summary, "no legacy layout fits the start of the stream");
}

TEST(Detect, AncientPvStreamFitsNothing) {
  // PV without extended info (Xen < 3.2): the p2m frame list follows the
  // p2m size directly and could pass for a body; here it does not.
  LegacyBuilder b(8);
  b.p2m_size(0x100).ulong(0x55).ulong(0x56);
  const Detection d = detect(b.bytes());
  EXPECT_FALSE(d.layout);
  EXPECT_TRUE(d.fitting.empty());
}

TEST(Detect, PageTableTypesAreNotHvm) {
  LegacyBuilder b(4);
  b.p2m_size(0x100).i32(2).ulong(0x10000001).ulong(2);
  const Detection d = detect(b.bytes());
  EXPECT_FALSE(d.layout);
  EXPECT_NE(d.reason.find("32-bit toolstack, HVM guest: no: page batch entry 0 at 0x8 has the page-table type "
                          "0x1, which HVM guests do not use"),
            std::string::npos)
      << d.reason;
}

TEST(Detect, TooShort) {
  const Buffer tiny{std::byte{1}, std::byte{0}};
  const Detection d = detect(tiny);
  EXPECT_FALSE(d.layout);
  EXPECT_NE(d.reason.find("the input is too short"), std::string::npos);
}

}  // namespace
}  // namespace xenstream::convert::testing
