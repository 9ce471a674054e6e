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
// directory is removed after every input. Then the input is restored once
// more from a pipe, as streamrestore - reads it, where page data moves
// inside the kernel (Source::transfer and transfer_pages): the outcome, its
// error and memory.raw (contents and holes) must be the ones from memory.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

restore::RestoreReport restore_into(Source& src, const ContainerInfo& c, const fs::path& out) {
  std::error_code ec;
  fs::remove_all(out, ec);
  restore::DirectoryOptions dopt;
  dopt.dir = out.string();
  dopt.max_staged_pages = 4096;
  auto backend = restore::DirectoryBackend::create(dopt);
  FUZZ_CHECK(backend.has_value(), backend.error().describe());
  restore::RestoreOptions ropt;
  ropt.limits.max_pfn = (std::uint64_t{1} << 20) - 1;
  restore::RestoreReport r = restore::restore_stream(src, c, **backend, ropt);
  backend->reset();
  return r;
}

// memory.raw's size, the blocks it holds and its data extents with their
// offsets ("" when there is none). The file may be gigabytes of holes: only
// the extents are read.
std::string memory_of(const fs::path& dir) {
  const fs::path p = dir / "memory.raw";
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st {};
  std::string out;
  if (::fstat(fd, &st) == 0) {
    out = std::to_string(st.st_size) + "/" + std::to_string(st.st_blocks);
    for (off_t at = ::lseek(fd, 0, SEEK_DATA); at >= 0 && at < st.st_size; at = ::lseek(fd, at, SEEK_DATA)) {
      const off_t end = ::lseek(fd, at, SEEK_HOLE);
      FUZZ_CHECK(end > at, "memory.raw: a data extent without an end");
      std::string chunk(static_cast<std::size_t>(end - at), '\0');
      FUZZ_CHECK(::pread(fd, chunk.data(), chunk.size(), at) == static_cast<ssize_t>(chunk.size()),
                 "memory.raw: cannot read a data extent");
      out += "|" + std::to_string(at) + ":" + chunk;
      at = end;
    }
  }
  ::close(fd);
  return out;
}

// From a pipe that already holds the whole input, as streamrestore opens
// standard input (no read-ahead), against the restore from memory in `mem`.
void check_pipe_agrees(Bytes in, const restore::RestoreReport& m, const fs::path& mem) {
  const int fd = fuzz::pipe_holding(in);
  if (fd < 0) return;
  {  // the source borrows fd: gone before it is closed
    FdSource pipe(fd, "<pipe>");
    pipe.set_read_ahead(false);
    auto c = read_container(pipe);
    FUZZ_CHECK(c.has_value(), "the container reads from memory, not from a pipe: " + c.error().describe());
    const fs::path out = base_dir() / "out-pipe";
    const restore::RestoreReport q = restore_into(pipe, *c, out);
    // From a pipe a PAGE_DATA head is judged before the rest of its record
    // arrives; from memory the cursor sees a record cut short before the
    // rules judge anything in it. So where the input ends inside a record,
    // the pipe may have judged its head: its warnings and the pages before
    // the cut differ, and with nothing committed, a problem in it (a rule the
    // head breaks, one judged with it such as the domain header's, a pfn
    // above the limit) is reported instead of the cut. Both are then
    // invalid, and that problem lies before the cut. After a commit both
    // fail over with the same error.
    const bool cut = m.error && m.error->code == ErrorCode::kTruncated;
    const bool head_judged_first = cut && m.status == restore::RestoreStatus::kInvalid && q.status == m.status &&
                                   m.checkpoints == 0 && m.rule && m.rule->rule == "STREAM-04" && q.error &&
                                   q.error->code != ErrorCode::kTruncated && q.error->offset < m.error->offset;
    FUZZ_CHECK(head_judged_first || outcome(q) == outcome(m),
               "from memory: " + outcome(m) + "; from a pipe: " + outcome(q));
    if (!cut) {
      // The same warnings; a record judged in two steps (head, then padding)
      // lists its own in stream order, where a whole one lists its padding's
      // first.
      auto qw = q.warnings, mw = m.warnings;
      std::sort(qw.begin(), qw.end());
      std::sort(mw.begin(), mw.end());
      FUZZ_CHECK(q.pages == m.pages && qw == mw, "from a pipe: other pages or warnings");
    }
    FUZZ_CHECK(memory_of(out) == memory_of(mem), "memory.raw from a pipe differs from memory's");
    std::error_code ec;
    fs::remove_all(out, ec);
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Bytes in(reinterpret_cast<const std::byte*>(data), size);
  MemorySource src(in);
  auto c = read_container(src);
  if (!c || c->payload == PayloadKind::kLegacy) return 0;

  const fs::path out = base_dir() / "out";
  const restore::RestoreReport r = restore_into(src, *c, out);

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
  if (size <= (1u << 20)) check_pipe_agrees(in, r, out);
  std::error_code ec;
  fs::remove_all(out, ec);
  return 0;
}
