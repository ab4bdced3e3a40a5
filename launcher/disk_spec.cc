#include "launcher/disk_spec.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace bulkhead::launcher {

namespace {
constexpr int kLockAttempts = 50;
constexpr useconds_t kLockRetryUs = 20000;  // 1 s in all
}  // namespace

DiskImage open_disk(const std::string& path, bool read_only) {
  DiskImage disk;
  disk.path = path;
  disk.read_only = read_only;
  if (disk.path.empty()) throw InputError("a disk has no path");
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
  // A lock on the open file description, so it travels with the descriptor to the device
  // process and lasts as long as that holds it: no second VM (nor QEMU, whose image locks
  // overlap it) writes the image at the same time, and nobody writes a shared read-only one.
  struct flock lock {};
  lock.l_type = disk.read_only ? F_RDLCK : F_WRLCK;
  lock.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  // A VM that just ended may hold it a moment longer (a killed device's io_uring is torn
  // down asynchronously): a short grace before calling the image busy.
  int rc;
  for (int attempt = 0; (rc = ::fcntl(disk.fd.get(), F_OFD_SETLK, &lock)) != 0 && (errno == EAGAIN || errno == EACCES) &&
                        attempt < kLockAttempts;
       ++attempt)
    ::usleep(kLockRetryUs);
  if (rc != 0) {
    if (errno != EAGAIN && errno != EACCES) throw InputError("cannot lock disk image '" + disk.path + "': " + std::strerror(errno));
    throw InputError("disk image '" + disk.path + "' is in use by another process" +
                     (disk.read_only ? std::string(" that writes it") : std::string()) +
                     "; give each VM its own image, or share it read-only with ,ro");
  }
  if (disk.size < 512) throw InputError("disk image '" + disk.path + "' is smaller than one 512-byte block");
  if (disk.size % 512)
    throw InputError("disk image '" + disk.path + "' is " + std::to_string(disk.size) + " bytes, not a multiple of 512");
  return disk;
}

}  // namespace bulkhead::launcher
