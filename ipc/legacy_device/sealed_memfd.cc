#include "ipc/legacy_device/sealed_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/error.h"

namespace bulkhead::legacy {

UniqueFd make_sealed_memfd(const char* name, size_t size, const std::string& what) {
  // memfd_create names an anonymous file; nothing on disk is touched.
  UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) throw_errno("memfd_create for " + what);
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) throw_errno("sizing " + what);
  if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) throw_errno("sealing " + what);
  return fd;
}

}  // namespace bulkhead::legacy
