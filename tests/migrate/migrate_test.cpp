// xl migrate protocol: the receiver against the test sender over pipes, with
// streamrestore's library restoring into a directory.
#include <fcntl.h>
#include <csignal>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include <xenstream/libstream/sink.h>
#include "tools/gen/synth.h"
#include "tests/convert/legacy_builder.h"
#include "tools/migrate/xl_migrate.h"
#include "tools/restore/directory_backend.h"
#include "tools/restore/restore_driver.h"

namespace fs = std::filesystem;
namespace gen = xenstream::gen;
namespace mig = xenstream::migrate;
using namespace xenstream;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "xs-mig-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The callback streamrestore --xl-migrate-receive uses.
mig::RestoreFn restore_into(const fs::path& dir) {
  return [dir](Source& src, const ContainerInfo& c) {
    restore::DirectoryOptions d;
    d.dir = dir.string();
    auto b = restore::DirectoryBackend::create(d);
    if (!b) return 2;
    restore::RestoreOptions r;
    r.check_trailing = false;
    const auto rep = restore::restore_stream(src, c, **b, r);
    if (rep.error) std::cerr << "restore: " << rep.error->describe() << "\n";
    return restore::exit_status(rep.status);
  };
}

struct Pipes {
  int s2r[2];  // sender -> receiver
  int r2s[2];  // receiver -> sender
  Pipes() {
    EXPECT_EQ(::pipe2(s2r, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(r2s, O_CLOEXEC), 0);
  }
  ~Pipes() {
    for (int fd : {s2r[0], s2r[1], r2s[0], r2s[1]})
      if (fd >= 0) ::close(fd);
  }
  void close_fd(int& fd) {
    ::close(fd);
    fd = -1;
  }
};

mig::StreamWriter synth_writer(const gen::SynthOptions& o) {
  return [o](int fd) -> Expected<void> {
    FdSink sink(fd, "<to receiver>");
    auto s = gen::write_stream(sink, o);
    if (!s) return std::move(s).error();
    return {};
  };
}

gen::SynthOptions xl_options() {
  gen::SynthOptions o;
  o.container = gen::ContainerKind::kXl;
  o.pages = 200;
  o.name = "migrating-guest";
  o.emulator_context = true;
  return o;
}

}  // namespace

TEST(XlMigrate, MessagesHaveXlsExactLengths) {
  EXPECT_EQ(mig::kReceiverBanner.size(), 54u);
  EXPECT_EQ(mig::kReceiverReady.size(), 34u);
  EXPECT_EQ(mig::kSenderGo.size(), 44u);
  EXPECT_EQ(mig::kReceiverReport.size(), 39u);
  EXPECT_EQ(mig::kReceiverBanner.back(), '\n');
  EXPECT_EQ(mig::kSenderGo.back(), '\0');
}

TEST(XlMigrate, ACaptureTellsTheSenderToResumeItsDomain) {
  TempDir t;
  Pipes p;
  auto sender = std::async(std::launch::async,
                           [&] { return mig::run_xl_migrate_sender(p.r2s[0], p.s2r[1], synth_writer(xl_options()), false); });
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"));
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kCaptured);
  EXPECT_EQ(rep->status, mig::kCaptureStatus);
  EXPECT_TRUE(rep->permission_sent);
  auto st = sender.get();
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  EXPECT_EQ(*st, mig::kCaptureStatus);
  EXPECT_TRUE(fs::exists(t.path / "d" / "memory.raw"));
}

TEST(XlMigrate, TakeOverRestoresAndReportsSuccess) {
  TempDir t;
  Pipes p;
  const auto o = xl_options();
  auto sender = std::async(std::launch::async, [&] {
    auto r = mig::run_xl_migrate_sender(p.r2s[0], p.s2r[1], synth_writer(o), false);
    return r;
  });
  mig::ReceiverOptions ro;
  ro.take_over = true;
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"), ro);
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  auto st = sender.get();
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  EXPECT_EQ(*st, 0);
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kTakenOver);
  EXPECT_FALSE(rep->permission_sent);
  EXPECT_EQ(rep->restore_status, 0);
  EXPECT_TRUE(rep->config_json);
  EXPECT_NE(rep->config.find("migrating-guest"), std::string::npos) << rep->config;
  EXPECT_EQ(rep->config, slurp(t.path / "d" / "xl-config.json"));
  const std::string mem = slurp(t.path / "d" / "memory.raw");
  ASSERT_EQ(mem.size(), 200u * 4096);
  const auto page7 = gen::page_contents(o.seed, 7, 0);
  EXPECT_EQ(mem.substr(7 * 4096, 4096), std::string(reinterpret_cast<const char*>(page7.data()), 4096));
}

TEST(XlMigrate, FailedUnpauseSendsTheStatusAndThePermissionToResume) {
  TempDir t;
  Pipes p;
  auto sender = std::async(std::launch::async,
                           [&] { return mig::run_xl_migrate_sender(p.r2s[0], p.s2r[1], synth_writer(xl_options()), false); });
  mig::ReceiverOptions ro;
  ro.unpause = [] { return std::uint8_t{3}; };  // e.g. -ERROR_FAIL as one octet
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"), ro);
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kCaptured);
  auto st = sender.get();
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  EXPECT_EQ(*st, 3);
}

TEST(XlMigrate, ASenderThatSaysSomethingElseIsRefused) {
  TempDir t;
  Pipes p;
  const auto o = xl_options();
  auto sender = std::async(std::launch::async, [&]() -> Expected<void> {
    XS_TRY(mig::expect_message(p.r2s[0], mig::kReceiverBanner, "banner"));
    XS_TRY(synth_writer(o)(p.s2r[1]));
    XS_TRY(mig::expect_message(p.r2s[0], mig::kReceiverReady, "ready"));
    return mig::write_all(p.s2r[1], std::string_view("domain is mine, you are cleared to unpause\0x", 44), "go");
  });
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"));
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kGoRefused);
  ASSERT_TRUE(rep->go_error);
  EXPECT_EQ(rep->go_error->code, ErrorCode::kMalformed);
  EXPECT_NE(rep->go_error->message.find("the sender's \"cleared to unpause\": expected \"domain is yours, you are "
                                        "cleared to unpause\\0\", got \"domain is mine"),
            std::string::npos)
      << rep->go_error->message;
  EXPECT_EQ(rep->status, mig::kGoRefusedStatus);  // as xl: the report, 0xFF, then GO back
  EXPECT_TRUE(rep->permission_sent);
  EXPECT_TRUE(sender.get().has_value());
}

TEST(XlMigrate, SenderGoingAwayBeforeClearingIsTruncation) {
  TempDir t;
  Pipes p;
  const auto o = xl_options();
  auto sender = std::async(std::launch::async, [&]() -> Expected<void> {
    XS_TRY(mig::expect_message(p.r2s[0], mig::kReceiverBanner, "banner"));
    XS_TRY(synth_writer(o)(p.s2r[1]));
    p.close_fd(p.s2r[1]);
    return {};
  });
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"));
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kGoRefused);
  ASSERT_TRUE(rep->go_error);
  EXPECT_EQ(rep->go_error->code, ErrorCode::kTruncated);
  EXPECT_NE(rep->go_error->message.find("the sender went away while sending"), std::string::npos)
      << rep->go_error->message;
  EXPECT_EQ(rep->go_error->message.find("0x0x"), std::string::npos) << rep->go_error->message;
  EXPECT_TRUE(sender.get().has_value());
}

TEST(XlMigrate, RemusReceiverFailsOverToTheLastCheckpoint) {
  TempDir t;
  Pipes p;
  auto o = xl_options();
  o.checkpoints = 3;
  o.dirty_pages = 10;
  auto sender = std::async(std::launch::async, [&]() -> Expected<std::uint8_t> {
    auto r = mig::run_xl_migrate_sender(p.r2s[0], p.s2r[1], synth_writer(o), true);
    p.close_fd(p.s2r[1]);  // the primary goes away
    return r;
  });
  mig::ReceiverOptions ro;
  ro.mode = mig::Mode::kRemus;
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"), ro);
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kFailover);
  EXPECT_EQ(rep->restore_status, 3);
  ASSERT_TRUE(sender.get().has_value());
  const auto gens = gen::page_generations(o, 2);
  const std::string mem = slurp(t.path / "d" / "memory.raw");
  for (std::uint64_t pfn : {0ull, 5ull, 50ull, 150ull}) {
    const auto want = gen::page_contents(o.seed, pfn, gens[pfn]);
    EXPECT_EQ(mem.substr(pfn * 4096, 4096), std::string(reinterpret_cast<const char*>(want.data()), 4096)) << pfn;
  }
  const auto m = nlohmann::json::parse(slurp(t.path / "d" / "manifest.json"));
  EXPECT_EQ(m["checkpoints"]["committed"], 3);
  EXPECT_EQ(m["status"], "failover");
}

TEST(XlMigrate, ReceiverRefusesAStreamWithoutXlHeader) {
  TempDir t;
  Pipes p;
  auto o = xl_options();
  o.container = gen::ContainerKind::kNone;
  // More than the receiver's pipe holds once FdSource widened it to 1 MiB:
  // the sender must be stopped by EPIPE, not finish into the buffer.
  o.pages = 1024;
  auto sender = std::async(std::launch::async, [&]() -> Expected<void> {
    XS_TRY(mig::expect_message(p.r2s[0], mig::kReceiverBanner, "banner"));
    auto r = synth_writer(o)(p.s2r[1]);
    p.close_fd(p.s2r[1]);
    return r;
  });
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"));
  p.close_fd(p.s2r[0]);  // the sender's writes now fail (EPIPE) instead of blocking
  ASSERT_FALSE(rep.has_value());
  EXPECT_EQ(rep.error().code, ErrorCode::kMalformed) << rep.error().describe();
  EXPECT_FALSE(fs::exists(t.path / "d" / "manifest.json"));
  EXPECT_FALSE(sender.get().has_value());
}

TEST(XlMigrate, ALegacyPayloadIsConvertedOnTheFlyAndRestored) {
  // No STREAMv2 flag: xl passes stream version 1 and libxl converts the
  // legacy stream; the GO message after it must still be read.
  namespace ct = xenstream::convert::testing;
  ct::ScenarioOptions so;
  so.pages = 40;
  so.xl_header = true;  // JSON flag only (an xl of Xen 4.5)
  const ct::Scenario sc = ct::build_scenario(so);
  TempDir t;
  Pipes p;
  auto sender = std::async(std::launch::async, [&] {
    return mig::run_xl_migrate_sender(p.r2s[0], p.s2r[1], [&](int fd) {
      return mig::write_all(fd, std::string_view(reinterpret_cast<const char*>(sc.bytes.data()), sc.bytes.size()),
                            "the legacy image");
    }, false);
  });
  auto rep = mig::run_xl_migrate_receiver(p.s2r[0], p.r2s[1], restore_into(t.path / "d"));
  ASSERT_TRUE(rep.has_value()) << rep.error().describe();
  EXPECT_TRUE(rep->legacy_converted);
  EXPECT_FALSE(rep->legacy_error) << rep->legacy_error->describe();
  EXPECT_EQ(rep->outcome, mig::ReceiverOutcome::kCaptured);
  auto st = sender.get();
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  EXPECT_EQ(*st, mig::kCaptureStatus);
  const std::string mem = slurp(t.path / "d" / "memory.raw");
  ASSERT_FALSE(sc.memory.empty());
  for (const auto& [pfn, page] : sc.memory) {
    ASSERT_GE(mem.size(), (pfn + 1) * 4096) << pfn;
    EXPECT_EQ(mem.substr(pfn * 4096, 4096), std::string(reinterpret_cast<const char*>(page.data()), 4096)) << pfn;
  }
  const auto m = nlohmann::json::parse(slurp(t.path / "d" / "manifest.json"));
  EXPECT_EQ(m["status"], "complete");
  EXPECT_EQ(m["domain"]["converted_from_legacy"], true) << m["domain"].dump();
  EXPECT_NE(slurp(t.path / "d" / "xl-config.json").find("guest"), std::string::npos);
}
