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
// unknown option.
DiskImage open_disk(const std::string& spec);

}  // namespace bulkhead::launcher
