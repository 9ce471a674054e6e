// The commit journal of a restored-domain directory (tools/restore/README.md,
// "Crash-safe commits").
//
// A commit is described completely by a Journal before any committed file is
// touched: which staged pages go where in memory.raw, how large memory.raw
// becomes, and which staged files are renamed into the directory. Once the
// journal file is in place (written to a temporary name, then renamed: the
// commit point), applying it is idempotent, so an interrupted commit is
// finished by applying the same journal again.
//
// On-disk layout, all integers little-endian:
//   0   8  magic "XSJRNL01"
//   8   8  checkpoint number
//   16  8  memory size in octets (memory.raw is extended to it)
//   24  4  page entry count P
//   28  4  rename count R
//   32  16*P  page entries {u64 entry = type << 60 | pfn, u64 slot}
//   ...    R renames {u16 from_len, u16 to_len, from, to}
//   ...    8  checksum: 64-bit FNV-1a of every octet before it
// A slot is the page's index in the staged-pages file; kNoData marks an
// entry that only changes the pfn's type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <xenstream/libstream/error.h>
#include <xenstream/libstream/source.h>

namespace xenstream::restore {

struct JournalPage {
  std::uint64_t entry = 0;  // PFINFO type nibble << 60 | pfn
  std::uint64_t slot = 0;   // index of the page in the staged-pages file
};

struct JournalRename {
  std::string from;  // name in the staging directory
  std::string to;    // name in the restored-domain directory
};

struct Journal {
  static constexpr std::uint64_t kNoData = ~std::uint64_t{0};
  std::uint64_t checkpoint = 0;
  std::uint64_t memory_size = 0;
  std::vector<JournalPage> pages;      // sorted by pfn, one entry per pfn
  std::vector<JournalRename> renames;  // applied in order
};

inline constexpr char kJournalMagic[8] = {'X', 'S', 'J', 'R', 'N', 'L', '0', '1'};

// 64-bit FNV-1a.
std::uint64_t fnv1a64(Bytes data, std::uint64_t seed = 0xcbf29ce484222325ull);

// True for names the journal may carry: 1-200 octets of [A-Za-z0-9._-], not
// starting with '.'. Keeps a damaged journal from naming paths outside.
bool journal_name_ok(const std::string& name);

std::vector<std::byte> encode_journal(const Journal& journal);

// Decodes and checks a journal file's contents.
//   kMalformed: wrong magic, counts that do not fit, bad names, checksum
//               mismatch (a torn or damaged journal: treat as never written)
Expected<Journal> decode_journal(Bytes data);

}  // namespace xenstream::restore
