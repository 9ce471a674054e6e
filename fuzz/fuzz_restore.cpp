// Fuzz target: the restore driver (tools/restore) against a throw-away
// directory.
//
// Restores the input into a fresh DirectoryBackend under a temporary
// directory (no fsync, a small staging cap, a pfn limit of 2^20 so that
// memory.raw stays a modest sparse file), then checks the contract of each
// outcome: a complete or failed-over restore leaves a directory that opens
// (manifest.json readable, no .xenstream/ working state left), an invalid
// stream leaves nothing that looks finished (no manifest.json) unless a rule
// broke after a commit (then DIR opens at that checkpoint), and the
// driver never reports a device-model replay it was not asked to run. The
// directory is removed after every input.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "fuzz/common/walk.h"
#include "tools/restore/directory_backend.h"
#include "tools/restore/restore_driver.h"

namespace {

using namespace xenstream;
namespace fs = std::filesystem;

const fs::path& base_dir() {
  static const fs::path dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                        "/xenstream-fuzz-restore-XXXXXX";
    FUZZ_CHECK(mkdtemp(templ.data()) != nullptr, "cannot create a temporary directory");
    std::atexit([] { std::error_code ec; fs::remove_all(base_dir(), ec); });
    return fs::path(templ);
  }();
  return dir;
}

std::string outcome(const restore::RestoreReport& r) {
  return std::string(restore::status_name(r.status)) +
         (r.error ? ": " + r.error->describe() : std::string());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  MemorySource src(in);
  auto c = read_container(src);
  if (!c || c->payload == PayloadKind::kLegacy) return 0;

  const fs::path out = base_dir() / "out";
  std::error_code ec;
  fs::remove_all(out, ec);
  restore::DirectoryOptions dopt;
  dopt.dir = out.string();
  dopt.max_staged_pages = 4096;
  auto backend = restore::DirectoryBackend::create(dopt);
  FUZZ_CHECK(backend.has_value(), backend.error().describe());

  restore::RestoreOptions ropt;
  ropt.limits.max_pfn = (std::uint64_t{1} << 20) - 1;
  const restore::RestoreReport r = restore::restore_stream(src, *c, **backend, ropt);
  backend->reset();

  const bool manifest = fs::exists(out / "manifest.json");
  const bool work = fs::exists(out / restore::kWorkDirName);
  switch (r.status) {
    case restore::RestoreStatus::kComplete:
    case restore::RestoreStatus::kFailover: {
      FUZZ_CHECK(manifest && !work, outcome(r) + ": the directory is not a finished restore");
      auto m = restore::open_restored_directory(out.string());
      FUZZ_CHECK(m.has_value(), outcome(r) + ": " + m.error().describe());
      if (r.status == restore::RestoreStatus::kFailover) {
        FUZZ_CHECK(r.checkpointed && r.checkpoints > 0 && r.error, outcome(r));
      }
      break;
    }
    case restore::RestoreStatus::kInvalid:
      if (r.checkpoints == 0) {
        FUZZ_CHECK(!manifest && !work, outcome(r) + ": an invalid stream left files behind");
      } else {
        // A rule broke after a commit: DIR keeps that checkpoint, says why.
        FUZZ_CHECK(manifest && !work, outcome(r) + ": a rejected stream lost its last checkpoint");
        FUZZ_CHECK(r.rule.has_value(), outcome(r) + ": rejected after a commit without a rule");
        auto m = restore::open_restored_directory(out.string());
        FUZZ_CHECK(m.has_value(), outcome(r) + ": " + m.error().describe());
      }
      FUZZ_CHECK(r.error.has_value(), "kInvalid without an error");
      FUZZ_CHECK(r.error->offset <= size, outcome(r));
      break;
    case restore::RestoreStatus::kIoError:
      FUZZ_CHECK(r.error.has_value() && !r.error->message.empty(), "kIoError without an error");
      break;
    case restore::RestoreStatus::kReplayFailed:
      FUZZ_CHECK(false, "a replay failure without a device model");
  }
  fs::remove_all(out, ec);
  return 0;
}
