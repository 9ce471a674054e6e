// Test stand-in for `streamrestore --xl-migrate-receive [-r] --out DIR`
// (the same calls the CLI wiring makes): speaks the receiver side on
// stdin/stdout, restores into DIR, prints the outcome on stderr.
// Exit: 0 migrated (or remus stream complete), 3 remus failover,
// 1 protocol or stream error, 2 usage.
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>

#include "tools/migrate/xl_migrate.h"
#include "tools/restore/directory_backend.h"
#include "tools/restore/restore_driver.h"

using namespace xenstream;

int main(int argc, char** argv) {
  bool remus = false;
  bool take_over = false;
  std::string out;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "-r") == 0) remus = true;
    else if (std::strcmp(argv[i], "--take-over") == 0) take_over = true;
    else if (std::strcmp(argv[i], "--out") == 0 && i + 1 < argc) out = argv[++i];
    else {
      std::cerr << "usage: receive_tool [-r] [--take-over] --out DIR\n";
      return 2;
    }
  }
  if (out.empty()) return 2;
  auto restore_fn = [&](Source& src, const ContainerInfo& c) {
    restore::DirectoryOptions d;
    d.dir = out;
    auto b = restore::DirectoryBackend::create(d);
    if (!b) {
      std::cerr << "receive_tool: error: " << b.error().message << "\n";
      return 2;
    }
    restore::RestoreOptions r;
    r.check_trailing = false;  // the protocol continues on the same fd
    const auto rep = restore::restore_stream(src, c, **b, r);
    if (rep.error) std::cerr << "receive_tool: restore: " << rep.error->describe() << "\n";
    return restore::exit_status(rep.status);
  };
  migrate::ReceiverOptions ro;
  ro.mode = remus ? migrate::Mode::kRemus : migrate::Mode::kPlain;
  ro.take_over = take_over;
  auto rep = migrate::run_xl_migrate_receiver(0, 1, restore_fn, ro);
  if (!rep) {
    std::cerr << "receive_tool: error: " << rep.error().describe() << "\n";
    return 1;
  }
  std::cerr << "receive_tool: outcome "
            << migrate::outcome_name(rep->outcome)
            << " config " << rep->config.size() << " octets\n";
  if (rep->outcome == migrate::ReceiverOutcome::kGoRefused) return 1;
  return rep->outcome == migrate::ReceiverOutcome::kFailover ? 3 : 0;
}
