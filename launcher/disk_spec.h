// Disk images named on the command line, opened for a device process.
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

// Opens the image (read-write unless `read_only`). Throws InputError naming the problem:
// missing file, not a regular file or block device, smaller than 512 bytes or not made of
// 512-byte blocks, in use (a read-write image is locked for writing, a read-only one for
// reading, with open-file-description locks that the descriptor carries along).
DiskImage open_disk(const std::string& path, bool read_only);

}  // namespace bulkhead::launcher
