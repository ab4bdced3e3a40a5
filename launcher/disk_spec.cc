#include "launcher/disk_spec.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace bulkhead::launcher {

DiskImage open_disk(const std::string& spec) {
  DiskImage disk;
  size_t comma = spec.find(',');
  disk.path = spec.substr(0, comma);
  if (comma != std::string::npos) {
    std::string option = spec.substr(comma + 1);
    if (option != "ro") throw InputError("disk '" + spec + "': unknown option '" + option + "' (only ,ro is known)");
    disk.read_only = true;
  }
  if (disk.path.empty()) throw InputError("disk '" + spec + "' has no path");
  // open() of a user-supplied image; the descriptor goes to the device process.
  disk.fd.reset(::open(disk.path.c_str(), (disk.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!disk.fd) throw InputError("cannot open disk image '" + disk.path + "': " + std::strerror(errno));
  struct stat st;
  // fstat of the descriptor just opened.
  if (::fstat(disk.fd.get(), &st) != 0) throw InputError("cannot stat disk image '" + disk.path + "'");
  if (S_ISREG(st.st_mode)) {
    disk.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    // BLKGETSIZE64 writes the device size into a local uint64_t.
    if (::ioctl(disk.fd.get(), BLKGETSIZE64, &disk.size) != 0) throw InputError("cannot size block device '" + disk.path + "'");
  } else {
    throw InputError("disk image '" + disk.path + "' is not a regular file or block device");
  }
  if (disk.size < 512) throw InputError("disk image '" + disk.path + "' is smaller than one 512-byte block");
  if (disk.size % 512)
    throw InputError("disk image '" + disk.path + "' is " + std::to_string(disk.size) + " bytes, not a multiple of 512");
  return disk;
}

}  // namespace bulkhead::launcher
