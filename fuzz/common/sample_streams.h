// Small, well-formed sample streams built with libstream's writer: the seed
// corpora of the fuzz targets and the inputs of the fault tests.
//
// Every sample is a complete stream of a few KiB at most (one data page),
// covering one shape each: PV and HVM, libxl-wrapped and bare libxc, both
// byte orders, Remus and COLO checkpoints, xl and libvirt containers. They
// are meant to be valid by construction, not to exercise the verifier's
// rules; the fuzzer mutates them from there.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace xenstream::fuzz {

struct Sample {
  std::string name;              // file name in a corpus directory
  std::vector<std::byte> bytes;  // the whole stream
};

// The uncompressed samples, in a fixed order.
std::vector<Sample> sample_streams();

// Each sample compressed as one zstd frame (name + ".zst").
std::vector<Sample> compressed_samples();

// A minimal HVM context blob (HEADER, one CPU entry, END) and a minimal QEMU
// device-state blob (QEVM, version 3, one SECTION_FULL, EOF): the shapes the
// blob walkers parse.
std::vector<std::byte> sample_hvm_context();
std::vector<std::byte> sample_qemu_blob();

}  // namespace xenstream::fuzz
