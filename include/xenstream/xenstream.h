// xenstream in one include, for the common case: open an image or a stream
// (file, pipe, zstd), find its container and payload, walk or write its
// records. Everything here is also reachable by its own header under
// <xenstream/libstream/...> and <xenstream/codecs/...>.
#pragma once

#include <xenstream/codecs/open_input.h>
#include <xenstream/libstream/error.h>
#include <xenstream/libstream/headers.h>
#include <xenstream/libstream/record_names.h>
#include <xenstream/libstream/record_reader.h>
#include <xenstream/libstream/record_writer.h>
#include <xenstream/libstream/records.h>
#include <xenstream/libstream/sink.h>
#include <xenstream/libstream/source.h>
#include <xenstream/libstream/stream_cursor.h>
