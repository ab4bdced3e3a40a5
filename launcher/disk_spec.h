// Disk images named on the command line: PATH[,ro].
#pragma once

#include <cstdint>
#include <string>

#include "common/unique_fd.h"

namespace bulkhead::launcher {

struct DiskImage {
  std::string path;
  bool read_only = false;
  UniqueFd fd;
  uint64_t size = 0;
};

// Parses "PATH[,ro]" and opens the image (read-write unless ro). Throws InputError naming
// the problem: missing file, not a regular file or block device, smaller than 512 bytes,
// unknown option, in use (a read-write image is locked for writing, a read-only one for
// reading, with open-file-description locks that the descriptor carries along).
DiskImage open_disk(const std::string& spec);

}  // namespace bulkhead::launcher
