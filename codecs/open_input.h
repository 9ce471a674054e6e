// Opening a tool's input: the best plain source for the path (mmap for
// regular files, a bounded window for pipes and stdin), with zstd decoding
// layered on when the input starts with the zstd magic.
#pragma once

#include <memory>
#include <string>

#include <xenstream/libstream/source.h>

namespace xenstream::codecs {

struct OpenedInput {
  std::unique_ptr<Source> source;
  bool compressed = false;  // zstd was detected
};

// `read_ahead` false: a reader that will move bulk data on with
// Source::transfer()/skip() (Source::set_read_ahead), set before the first
// octet is read; zstd input keeps reading ahead (it is copied anyway).
Expected<OpenedInput> open_input(const std::string& path, bool read_ahead = true);
// Same, for a source the caller already has (e.g. an fd of its own).
Expected<OpenedInput> wrap_input(std::unique_ptr<Source> plain);

}  // namespace xenstream::codecs
