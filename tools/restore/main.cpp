// streamrestore: apply a Xen save image or migration stream to a domain
// directory. A thin front end over the xenstream_restore library; see
// tools/restore/README.md.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>

#include <xenstream/codecs/open_input.h>
#include <xenstream/libstream/headers.h>
#include "tools/restore/fs_util.h"
#include "tools/restore/manifest.h"
#include "tools/restore/directory_backend.h"
#include "tools/restore/restore_driver.h"
#include "tools/common/cli.h"
#include "tools/common/progress.h"
#include "tools/elfcore/elfcore.h"
#include "tools/migrate/xl_migrate.h"

namespace {

using namespace xenstream;
using namespace xenstream::restore;

constexpr int kExitUsage = 2;

void print_error(const std::string& what) { std::fprintf(stderr, "streamrestore: %s\n", what.c_str()); }

FormatHint parse_format(const std::string& f) {
  if (f == "xl") return FormatHint::kXl;
  if (f == "libvirt") return FormatHint::kLibvirt;
  if (f == "libxl") return FormatHint::kLibxl;
  if (f == "libxc") return FormatHint::kLibxc;
  return FormatHint::kAuto;
}

// XENSTREAM_TEST_KILL_AT=<checkpoint>:<step> makes streamrestore kill itself
// with SIGKILL at that commit step (tests of crash safety; see README.md).
std::function<void(std::string_view, std::uint64_t)> kill_hook_from_env() {
  const char* spec = std::getenv("XENSTREAM_TEST_KILL_AT");
  if (spec == nullptr || *spec == '\0') return nullptr;
  const std::string s = spec;
  const auto colon = s.find(':');
  if (colon == std::string::npos) return nullptr;
  const std::uint64_t checkpoint = std::strtoull(s.substr(0, colon).c_str(), nullptr, 10);
  const std::string step = s.substr(colon + 1);
  return [checkpoint, step](std::string_view at, std::uint64_t k) {
    if (k == checkpoint && at == step) ::raise(SIGKILL);
  };
}

int recover(const std::string& dir, bool json_out) {
  auto r = recover_directory(dir);
  if (!r) {
    print_error("error: " + r.error().message);
    return kExitUsage;
  }
  std::string action;
  switch (r->action) {
    case RecoveryReport::Action::kNone: action = "none"; break;
    case RecoveryReport::Action::kFinishedCommit: action = "finished-commit"; break;
    case RecoveryReport::Action::kDroppedStaging: action = "dropped-staging"; break;
  }
  if (json_out) {
    nlohmann::json j = {{"action", action}, {"restored", r->has_manifest}, {"status", r->status}};
    j["checkpoints"] = r->checkpoints ? nlohmann::json(*r->checkpoints) : nlohmann::json();
    std::cout << json_text(j) << "\n";
  } else {
    std::string what = r->has_manifest ? "holds a restored domain" : "holds no restored domain";
    if (r->checkpoints && *r->checkpoints > 0) what += " at checkpoint " + std::to_string(*r->checkpoints);
    std::fprintf(stderr, "streamrestore: %s: %s (%s)\n", dir.c_str(), what.c_str(), action.c_str());
  }
  return 0;
}

struct ReceiveArgs {
  std::string out;
  std::uint32_t domid;
  bool fsync;
  bool quiet;
  bool json_out;
  std::string on_checkpoint;
  std::string emulator_exec;
  double emulator_timeout;
  std::uint64_t max_memory;
  std::string elf_path;
  bool remus;
  bool colo;
  std::string coloft_script;
  bool userspace_colo_proxy;
  bool take_over;
  verify::VerifyOptions rules;
};

// Adds `migration` to DIR/manifest.json (and, when given, replaces its
// status), atomically: a temporary file renamed over the manifest.
Expected<void> record_migration(const std::string& dir, const nlohmann::json& migration,
                                const std::string& status, bool durable) {
  const std::string path = dir + "/" + kManifestName;
  nlohmann::json m;
  {
    std::ifstream in(path);
    if (!in) return io_error("cannot read " + path, errno);
    m = nlohmann::json::parse(in, nullptr, false);
    if (m.is_discarded()) return make_error(ErrorCode::kMalformed, 0, path + " is not JSON");
  }
  m["migration"] = migration;
  if (!status.empty()) m["status"] = status;
  const std::string text = json_text(m, 2) + "\n";
  UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() < 0) return io_error("cannot open " + dir, errno);
  const std::string tmp = std::string(kManifestName) + ".migration-tmp";
  const Bytes part(reinterpret_cast<const std::byte*>(text.data()), text.size());
  XS_TRY(write_file_at(dfd.get(), tmp, std::span<const Bytes>(&part, 1), durable));
  if (::renameat(dfd.get(), tmp.c_str(), dfd.get(), kManifestName) != 0) {
    return io_error("cannot rename " + tmp + " in " + dir, errno);
  }
  if (durable) XS_TRY(fsync_fd(dfd.get(), dir));
  return {};
}

// --xl-migrate-receive: xl's migrate-receive on stdin/stdout.
int xl_receive(const ReceiveArgs& a) {
  // stdout is the protocol channel: nothing else may be written there.
  // The mode comes from the flags, as in xl (the rule engine has it in a.rules.mode).
  const migrate::Mode mode = a.colo    ? migrate::Mode::kColo
                             : a.remus ? migrate::Mode::kRemus
                                       : migrate::Mode::kPlain;
  std::optional<RestoreReport> last;
  migrate::ColoBackChannel back(1);
  const std::string mode_s(migrate::mode_name(mode));
  nlohmann::json mig = {{"mode", mode_s}, {"take_over", a.take_over}};
  if (mode == migrate::Mode::kColo) {
    mig["coloft_script"] = a.coloft_script;
    mig["userspace_colo_proxy"] = a.userspace_colo_proxy;
  }
  bool pending_recorded = false;
  auto restore_fn = [&](Source& src, const ContainerInfo& container) {
    DirectoryOptions dopts;
    dopts.dir = a.out;
    dopts.fsync = a.fsync;
    dopts.domid = a.domid;
    auto backend = DirectoryBackend::create(dopts);
    if (!backend) {
      print_error("error: " + backend.error().message);
      return kExitUsage;
    }
    RestoreOptions ropts;
    ropts.domid = a.domid;
    ropts.on_checkpoint = a.on_checkpoint;
    ropts.hook_env = {{"XENSTREAM_DIR", a.out}};
    ropts.emulator_exec = a.emulator_exec;
    ropts.emulator_timeout = std::chrono::milliseconds(static_cast<long long>(a.emulator_timeout * 1000));
    ropts.check_trailing = false;  // the protocol goes on after END on the same fd
    ropts.rules = a.rules;
    if (a.max_memory != 0) ropts.limits.max_pfn = a.max_memory / 4096 - 1;
    if (mode == migrate::Mode::kColo) {
      // A broken back channel is a failover at the last commit.
      ropts.after_commit = [&back](std::uint64_t) { return back.checkpoint_applied(); };
      ropts.on_checkpoint_new = [&back] { return back.new_checkpoint(); };
    }
    last = restore_stream(src, container, **backend, ropts);
    if (mode == migrate::Mode::kPlain && last->status == RestoreStatus::kComplete) {
      // Until the sender answers, DIR holds a received domain, not a
      // completed migration: say so before "domain received" goes out, so
      // that no ending (a crash, a kill) leaves a DIR that looks finished.
      nlohmann::json pending = mig;
      pending["outcome"] = "pending";
      pending["told_sender"] = "nothing yet (\"domain received\" is being sent)";
      if (auto r = record_migration(a.out, pending, "migration-pending", a.fsync); !r) {
        print_error("error: recording the migration in the manifest: " + r.error().message);
        return kExitUsage;  // nothing more is said: the sender resumes its domain
      }
      pending_recorded = true;
    }
    return exit_status(last->status);
  };
  migrate::ReceiverOptions mopts;
  mopts.mode = mode;
  mopts.take_over = a.take_over;
  auto rep = migrate::run_xl_migrate_receiver(0, 1, restore_fn, mopts);
  if (last && !a.quiet) {
    for (const auto& w : last->warnings) print_error("warning: " + w);
  }
  int rc = 0;
  if (mode == migrate::Mode::kColo) mig["back_channel_messages"] = back.messages();
  std::string new_status;  // replaces the manifest's status when set
  const bool have_manifest = ::access((a.out + "/" + kManifestName).c_str(), F_OK) == 0;
  if (!rep) {
    if (last && last->error) print_error("error: restore: " + last->error->describe());
    print_error("error: xl migrate-receive (" + mode_s + "): " + rep.error().describe());
    rc = last ? (exit_status(last->status) != 0 ? exit_status(last->status) : 1) : 1;
    if (rep.error().code == ErrorCode::kIo && rc == 1) rc = kExitUsage;
    if (have_manifest) {
      // DIR holds something (a pending capture, checkpoints committed before
      // a bad record): the manifest says how the migration ended.
      mig["outcome"] = "restore-failed";
      mig["told_sender"] = "nothing more";
      mig["error"] = rep.error().message;
      if (pending_recorded) new_status = "migration-incomplete";
      if (auto r = record_migration(a.out, mig, new_status, a.fsync); !r) {
        print_error("error: recording the migration in the manifest: " + r.error().message);
        if (rc == 0) rc = kExitUsage;
      }
    }
  } else {
    const std::string outcome(migrate::outcome_name(rep->outcome));
    mig["outcome"] = outcome;
    if (rep->legacy_converted) {
      mig["converted_from_legacy"] = true;
      mig["legacy_checkpoints"] = rep->legacy_checkpoints;
      mig["legacy_last_checkpoint"] = rep->legacy_last_checkpoint;
      if (!a.quiet) {
        for (const auto& w : rep->legacy_warnings) print_error("warning: legacy conversion: " + w);
      }
    }
    if (rep->status) mig["status_sent"] = *rep->status;
    mig["permission_to_resume_sent"] = rep->permission_sent;
    std::string told;
    switch (rep->outcome) {
      case migrate::ReceiverOutcome::kTakenOver:
        told = "the domain started here: the sender destroys its domain";
        print_error("xl migrate-receive: domain received; the sender was told it started here "
                    "(--take-over), so xl destroys the source domain");
        break;
      case migrate::ReceiverOutcome::kCaptured:
        told = "the domain could not be started here (status " + std::to_string(migrate::kCaptureStatus) +
               "): the sender resumes its domain";
        print_error("xl migrate-receive: domain captured; the sender was told it could not start here "
                    "(status " + std::to_string(migrate::kCaptureStatus) +
                    "), so xl resumes the source domain and `xl migrate` exits 1 (use --take-over to take it over)");
        break;
      case migrate::ReceiverOutcome::kGoRefused:
        told = "status 0xff (no valid permission to start): the sender resumes its domain";
        print_error("error: xl migrate-receive: " + rep->go_error->describe() +
                    "; answered as xl does: status 0xff and permission to resume; " + a.out +
                    " holds the received domain but the migration did not complete");
        new_status = "migration-refused";
        mig["go_error"] = rep->go_error->message;
        rc = 1;
        break;
      case migrate::ReceiverOutcome::kFailover:
        told = "nothing (the primary went away)";
        print_error("xl migrate-receive (" + mode_s + "): failover: " + a.out + " holds checkpoint " +
                    std::to_string(last->checkpoints) +
                    (rep->legacy_converted ? " (legacy stream: it ended without LAST_CHECKPOINT)" : ""));
        // A converted legacy stream ends with END: the restore said complete.
        if (rep->restore_status == 0) new_status = "failover";
        rc = 3;
        break;
      case migrate::ReceiverOutcome::kComplete:
        told = "nothing (the stream ended with END)";
        print_error("xl migrate-receive (" + mode_s + "): stream complete");
        break;
      case migrate::ReceiverOutcome::kSenderLost:
        told = "nothing: the sender went away before \"domain received\"";
        print_error("error: xl migrate-receive: the sender went away before \"domain received\" could be sent; " +
                    a.out + " holds the received domain but the migration did not complete");
        new_status = "migration-incomplete";
        rc = kExitUsage;
        break;
    }
    if (rep->reply_error && rep->outcome != migrate::ReceiverOutcome::kSenderLost) {
      // Say only what reached the sender's side of the connection.
      if (!rep->status) {
        told = "nothing: \"domain received\" was sent, the unpause result could not be";
      } else if (*rep->status != 0 && !rep->permission_sent) {
        told = "status " + std::to_string(*rep->status) + ", but not the permission to resume";
      }
    }
    mig["told_sender"] = told;
    if (rep->reply_error) {
      print_error("error: xl migrate-receive: " + rep->reply_error->describe() +
                  ": the sender may not know the outcome");
      mig["reply_error"] = rep->reply_error->message;
      if (rc == 0) rc = kExitUsage;
      if (new_status.empty()) new_status = "migration-unanswered";
    }
    // The pending mark goes only when the conversation ended as recorded.
    if (new_status.empty() && pending_recorded) new_status = "complete";
    print_error("xl migrate-receive: domain config (" + std::to_string(rep->config.size()) + " octets, " +
                (rep->config_json ? "JSON" : "xl format") + ") kept in " + a.out);
    if (auto r = record_migration(a.out, mig, new_status, a.fsync); !r) {
      print_error("error: recording the migration in the manifest: " + r.error().message);
      if (rc == 0) rc = kExitUsage;
    }
  }
  if ((rc == 0 || rc == 3) && !a.elf_path.empty()) {
    auto e = elfcore::write_elf_core(a.out, a.elf_path);
    if (!e) {
      print_error("error: --elf: " + e.error().message);
      rc = kExitUsage;
    }
  }
  if (a.json_out) {
    nlohmann::json j = {{"status", last ? std::string(status_name(last->status)) : std::string("invalid")},
                        {"exit", rc},
                        {"checkpoints", last ? last->checkpoints : 0},
                        {"protocol", rep ? "ok" : rep.error().message},
                        {"migration", mig},
                        {"warnings", last ? last->warnings : std::vector<std::string>{}},
                        {"config", rep ? rep->config : std::string()}};
    std::cerr << json_text(j) << "\n";
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // A broken pipe on stderr or a hook's pipe must not kill a restore that
  // is between commits.
  ::signal(SIGPIPE, SIG_IGN);

  CLI::App app{
      "Apply a Xen save image or migration stream (libxl/libxc v2/v3, optionally in an xl or\n"
      "libvirt container, optionally zstd-compressed) to a domain directory: memory.raw,\n"
      "manifest.json and one file per blob. Checkpointed (Remus/COLO) streams are committed\n"
      "atomically at every checkpoint.\n\n"
      "Exit status: 0 restored; 1 the stream is invalid or incomplete and nothing was\n"
      "committed (DIR holds no manifest.json); 2 usage or I/O error; 3 a checkpointed\n"
      "stream stopped early (or --on-checkpoint failed) and DIR holds the last complete\n"
      "checkpoint; 4 the restore finished but the device model refused the emulator context.",
      "streamrestore"};
  cli::add_version_flag(app, "streamrestore");
  std::string input;
  std::string out;
  std::string format = "auto";
  std::uint32_t domid = 1;
  std::string emulator_exec;
  double emulator_timeout = 60;
  std::string on_checkpoint;
  bool fsync = false;
  bool quiet = false;
  bool json_out = false;
  std::string recover_dir;
  std::uint64_t max_memory = 0;
  bool xl_migrate_receive = false;
  bool remus = false;
  bool take_over = false;
  bool colo = false;
  bool strict = false;
  std::string coloft_script;
  bool userspace_colo_proxy = false;
  verify::VerifyOptions rules;  // the rule engine's (spec/verify-rules.md)
  std::string elf_path;
  app.add_option("input", input, "stream to restore, or - for stdin");
  app.add_option("-o,--out", out, "directory to create (or an empty one)");
  app.add_option("--format", format, "container/payload: auto, xl, libvirt, libxl, libxc")
      ->check(CLI::IsMember({"auto", "xl", "libvirt", "libxl", "libxc"}));
  app.add_option("--domid", domid, "domain id, names the emulator file qemu-resume.<domid> (default 1)");
  app.add_option("--emulator-exec", emulator_exec,
                 "device model to start with the emulator context; {fd}, {file}, {qmp} and "
                 "{domid} are substituted (see README)");
  app.add_option("--emulator-timeout", emulator_timeout,
                 "seconds to wait for the device model to load the context (default 60)")
      ->check(CLI::PositiveNumber);
  app.add_option("--on-checkpoint", on_checkpoint,
                 "command run after each committed checkpoint, with XENSTREAM_CHECKPOINT=<n> and "
                 "XENSTREAM_DIR in its environment; failing stops the restore (exit 3)");
  app.add_flag("--fsync", fsync, "make every commit durable (fsync files and directories)");
  app.add_flag("-q,--quiet", quiet, "no progress and no warnings");
  app.add_flag("--json", json_out, "print the outcome as JSON on stdout");
  app.add_flag("--xl-migrate-receive", xl_migrate_receive,
               "be the receiving end of `xl migrate -s '' DOMID 'ssh HOST streamrestore "
               "--xl-migrate-receive --out DIR'`: speak xl's migrate-receive protocol on stdin/stdout "
               "(--json then goes to stderr). The source domain is NOT given up: at the end the "
               "sender is told that the domain could not be started here (status 3), so xl "
               "resumes it on the sending host and `xl migrate` exits 1; DIR holds the capture");
  app.add_flag("--take-over", take_over,
               "with --xl-migrate-receive (plain mode): tell the sender that the domain started "
               "here (status 0): xl then DESTROYS the source domain and `xl migrate` exits 0. "
               "Only for a caller that really runs the domain from DIR");
  app.add_flag("-r,--remus", remus,
               "restore as an `xl remus` secondary (migrate-receive -r): take checkpoints until the "
               "primary goes away, then fail over (exit 3); the libxc END ends the restore and "
               "CHECKPOINT_STATE is refused");
  app.add_flag("--colo", colo,
               "restore as a COLO secondary (migrate-receive -r --colo): a CHECKPOINT_STATE(NEW) "
               "must follow every CHECKPOINT_END");
  app.add_option("--coloft-script", coloft_script,
                 "accepted as by xl migrate-receive --colo (the COLO proxy script a real secondary "
                 "runs for its network devices); there are no devices here, so it is recorded in the "
                 "manifest and not run");
  app.add_flag("--userspace-colo-proxy", userspace_colo_proxy,
               "accepted as by xl migrate-receive --colo (use the userspace COLO proxy); recorded "
               "in the manifest, nothing to set up here");
  app.add_flag("--strict", strict,
               "refuse streams that break rules Xen's restore path does not enforce (padding, "
               "reserved fields, octets after END...; 'strict' in spec/verify-rules.md), as "
               "streamverify --strict does");
  app.add_option("--elf", elf_path,
                 "also write the restored memory as an ELF64 core file in QEMU's dump-guest-memory "
                 "layout (one NT_PRSTATUS note per vCPU, one PT_LOAD per run of present pfns, "
                 "guest-physical addresses in p_paddr); without --out, DIR is temporary");
  app.add_option("--max-memory", max_memory,
                 "largest guest-physical memory to restore, in bytes (suffixes K, M, G, T): a page "
                 "above it fails the restore before anything is written for it [default 16T]")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::uint64_t{4096}, std::uint64_t{1} << 44));
  app.add_option("--recover", recover_dir,
                 "finish or roll back an interrupted restore in this directory, then exit");
  if (auto rc = cli::parse_command_line(app, argc, argv)) return *rc;

  if (!recover_dir.empty()) {
    if (!input.empty() || !out.empty()) {
      print_error("error: --recover takes a directory and no other input or --out");
      return kExitUsage;
    }
    return recover(recover_dir, json_out);
  }
  // `xl remus --colo` runs `xl migrate-receive --colo` (without -r): with
  // --xl-migrate-receive, --colo alone is a COLO secondary.
  if ((!coloft_script.empty() || userspace_colo_proxy) && !(xl_migrate_receive && colo)) {
    print_error("error: --coloft-script and --userspace-colo-proxy need --xl-migrate-receive --colo");
    return kExitUsage;
  }
  if (take_over && (!xl_migrate_receive || remus || colo)) {
    print_error("error: --take-over needs --xl-migrate-receive in plain mode (a Remus secondary "
                "sends the primary nothing at the end)");
    return kExitUsage;
  }
  // The mode, as in Xen: a file is judged from its stream unless -r or --colo
  // says; a migrate-receive without -r is a plain restore.
  rules.strict = strict;
  rules.mode = colo ? verify::Mode::kColo
               : remus ? verify::Mode::kRemus
               : xl_migrate_receive ? verify::Mode::kPlain
                                    : verify::Mode::kAuto;
  if (xl_migrate_receive) {
    // What xl's receiver decides itself may not be chosen here.
    if (app.count("--format") > 0) {
      print_error("error: --format makes no sense with --xl-migrate-receive: the sender always "
                  "starts with an xl save header");
      return kExitUsage;
    }
    if (!input.empty() && input != "-") {
      print_error("error: --xl-migrate-receive reads the sender on stdin; give no input (or -)");
      return kExitUsage;
    }
    input = "-";
  }
  // --elf without --out: restore into a temporary DIR beside FILE, removed at the end.
  std::string temp_out;
  if (out.empty() && !elf_path.empty()) {
    std::string t = elf_path + ".restore-XXXXXX";
    if (::mkdtemp(t.data()) == nullptr) {
      print_error("error: cannot create a temporary directory beside " + elf_path);
      return kExitUsage;
    }
    out = temp_out = t;
  }
  struct TempRemover {
    std::string dir;
    ~TempRemover() {
      if (!dir.empty()) std::filesystem::remove_all(dir);
    }
  } temp_remover{temp_out};
  if (input.empty() || out.empty()) {
    print_error("error: an input (file or -) and --out DIR (or --elf FILE) are required; see --help");
    return kExitUsage;
  }

  if (xl_migrate_receive) {
    return xl_receive(ReceiveArgs{out, domid, fsync, quiet, json_out, on_checkpoint, emulator_exec,
                                  emulator_timeout, max_memory, elf_path, remus, colo, coloft_script, userspace_colo_proxy, take_over, rules});
  }
  // From a pipe, page data goes straight to memory.raw (splice): read no
  // further ahead than the records' heads.
  auto opened = codecs::open_input(input, /*read_ahead=*/false);
  if (!opened) {
    print_error("error: " + opened.error().message);
    return kExitUsage;
  }
  Source& src = *opened->source;
  rules.format = parse_format(format);
  auto container = read_container(src, parse_format(format));
  if (!container) {
    const Error& e = container.error();
    if (auto p = container_refused(src, e, rules)) {
      print_error("error: " + src.name() + ": " + p->format() + " (nothing restored)");
      return 1;
    }
    print_error("error: " + src.name() + ": " + e.describe());
    return e.code == ErrorCode::kIo || e.code == ErrorCode::kUsage ? kExitUsage : 1;
  }

  DirectoryOptions dopts;
  dopts.dir = out;
  dopts.fsync = fsync;
  dopts.domid = domid;
  dopts.on_step = kill_hook_from_env();
  auto backend = DirectoryBackend::create(dopts);
  if (!backend) {
    print_error("error: " + backend.error().message);
    return kExitUsage;
  }

  cli::ProgressLine progress("streamrestore", cli::ProgressLine::wanted(quiet));
  RestoreOptions ropts;
  ropts.domid = domid;
  ropts.compressed = opened->compressed;
  ropts.on_checkpoint = on_checkpoint;
  ropts.hook_env = {{"XENSTREAM_DIR", out}};
  ropts.emulator_exec = emulator_exec;
  ropts.emulator_timeout = std::chrono::milliseconds(static_cast<long long>(emulator_timeout * 1000));
  if (max_memory != 0) ropts.limits.max_pfn = max_memory / 4096 - 1;
  ropts.rules = rules;
  if (progress.enabled()) {
    ropts.progress = [&progress](const Progress& p) {
      progress.update(p.bytes, p.size_hint,
                      std::to_string(p.pages) + " pages, " + std::to_string(p.checkpoints) + " checkpoints");
    };
  }

  const RestoreReport report = restore_stream(src, *container, **backend, ropts);
  progress.clear();
  int elf_rc = 0;
  if (!elf_path.empty() && (report.status == RestoreStatus::kComplete || report.status == RestoreStatus::kFailover ||
                            report.status == RestoreStatus::kReplayFailed)) {
    auto e = elfcore::write_elf_core(out, elf_path);
    if (!e) {
      print_error("error: --elf: " + e.error().message);
      elf_rc = kExitUsage;
    }
  }

  if (!quiet) {
    for (const auto& w : report.warnings) print_error("warning: " + w);
  }
  const std::string where = src.name();
  switch (report.status) {
    case RestoreStatus::kComplete:
      break;
    case RestoreStatus::kFailover:
      print_error("failover: " + out + " holds checkpoint " + std::to_string(report.checkpoints) +
                  "; the stream stopped: " + where + ": " + report.error->describe());
      break;
    case RestoreStatus::kInvalid:
      print_error("error: " + where + ": " + report.error->describe() +
                  (report.checkpoints > 0
                       ? " (" + out + " keeps checkpoint " + std::to_string(report.checkpoints) +
                             "; its manifest says which rule broke)"
                   : report.checkpointed ? " (before the first checkpoint was complete; nothing restored)"
                                         : " (nothing restored)"));
      break;
    case RestoreStatus::kIoError:
      print_error("error: " + (report.error ? report.error->message : std::string("I/O error")));
      break;
    case RestoreStatus::kReplayFailed:
      print_error("error: emulator replay failed: " + report.replay->message);
      if (report.error) {
        print_error("note: the stream stopped early, " + out + " holds checkpoint " +
                    std::to_string(report.checkpoints) + ": " + report.error->describe());
      }
      break;
  }
  if (json_out) {
    nlohmann::json j = {{"status", std::string(status_name(report.status))},
                        {"exit", exit_status(report.status)},
                        {"checkpoints", report.checkpoints},
                        {"checkpointed", report.checkpointed},
                        {"bytes", report.bytes},
                        {"pages", report.pages},
                        {"warnings", report.warnings}};
    if (report.rule) {
      j["rule"] = {{"id", std::string(report.rule->rule)},
                   {"offset", report.rule->offset},
                   {"where", report.rule->where},
                   {"message", report.rule->message}};
    }
    if (report.error) {
      j["error"] = {{"offset", report.error->offset},
                    {"code", std::string(error_code_name(report.error->code))},
                    {"message", report.error->message}};
    }
    if (report.replay) {
      j["emulator_replay"] = {{"ok", report.replay->ok}, {"message", report.replay->message}};
      j["emulator_replay"]["pid"] = report.replay->pid ? nlohmann::json(*report.replay->pid) : nlohmann::json();
    }
    std::cout << json_text(j) << "\n";
  }
  return elf_rc != 0 ? elf_rc : exit_status(report.status);
}
