#include <xenstream/libstream/blobs/blob_finding.h>

namespace xenstream::blobs {

std::string describe(const BlobFinding& f) {
  return "blob offset " + hex(f.blob_offset) + " (file offset " + hex(f.file_offset) +
         "): " + f.message + " [" + std::string(f.rule) + "]";
}

bool has_error(const std::vector<BlobFinding>& findings) {
  for (const auto& f : findings) {
    if (f.severity == FindingSeverity::kError) return true;
  }
  return false;
}

Error first_error(const std::vector<BlobFinding>& findings, std::string_view what) {
  for (const auto& f : findings) {
    if (f.severity == FindingSeverity::kError) {
      return make_error(ErrorCode::kMalformed, f.file_offset,
                        std::string(what) + " at " + describe(f));
    }
  }
  return make_error(ErrorCode::kUsage, 0, std::string(what) + ": no error to report");
}

}  // namespace xenstream::blobs
