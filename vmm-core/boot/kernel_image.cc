#include "vmm-core/boot/kernel_image.h"

#include <elf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "vmm-core/boot/bzimage.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/boot/pvh.h"

namespace bulkhead::core {

uint64_t file_size(int fd, const char* what) {
  struct stat st;
  // fstat on a descriptor the launcher handed us.
  if (::fstat(fd, &st) != 0) throw_errno(std::string("fstat of ") + what);
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) throw InputError(std::string(what) + " is not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

void read_at(int fd, void* buffer, uint64_t length, uint64_t offset, const char* what) {
  auto* out = static_cast<uint8_t*>(buffer);
  while (length) {
    // pread into a caller-provided buffer of at least `length` bytes.
    ssize_t n = ::pread(fd, out, length, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(std::string("reading ") + what);
    if (n == 0) throw InputError(std::string(what) + " is truncated");
    out += n;
    length -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void write_cmdline(const std::string& cmdline, const GuestMemory& memory) {
  if (cmdline.size() + 1 > kCmdlineMax)
    throw InputError("kernel command line is " + std::to_string(cmdline.size()) + " bytes, the limit is " +
                     std::to_string(kCmdlineMax - 1));
  uint8_t* host = memory.require_range(kCmdlineAddr, cmdline.size() + 1, "command line");
  std::memcpy(host, cmdline.c_str(), cmdline.size() + 1);
}

uint64_t load_initrd(int fd, uint64_t lowest, uint64_t highest, const GuestMemory& memory, uint64_t* size) {
  *size = file_size(fd, "initrd");
  uint64_t top = std::min(memory.low_end(), highest);
  uint64_t lowest_aligned = (lowest + 0xfff) & ~0xfffull;
  if (*size > top || ((top - *size) & ~0xfffull) < lowest_aligned)
    throw InputError("initrd of " + std::to_string(*size >> 20) + " MiB does not fit in guest memory below " +
                     std::to_string(top >> 20) + " MiB next to the kernel; give the VM more --memory");
  uint64_t address = (top - *size) & ~0xfffull;
  read_at(fd, memory.require_range(address, *size, "initrd"), *size, 0, "initrd");
  return address;
}

KernelFormat probe_kernel(int fd) {
  uint64_t size = file_size(fd, "kernel");
  uint8_t header[0x240] = {};
  if (size < 64) throw InputError("kernel image is too small (" + std::to_string(size) + " bytes)");
  read_at(fd, header, std::min<uint64_t>(size, sizeof header), 0, "kernel");
  if (std::memcmp(header, ELFMAG, SELFMAG) == 0) {
    read_pvh_elf(fd);  // validates headers and the PVH note
    return KernelFormat::kPvhElf;
  }
  if (size >= sizeof header && header[0x1fe] == 0x55 && header[0x1ff] == 0xaa && std::memcmp(header + 0x202, "HdrS", 4) == 0) {
    read_bzimage(fd);  // validates the setup header
    return KernelFormat::kBzImage;
  }
  throw InputError("kernel is neither an ELF image with a PVH note nor a Linux bzImage");
}

BootEntry load_kernel(const BootInputs& inputs, const GuestMemory& memory) {
  write_cmdline(inputs.cmdline, memory);
  switch (probe_kernel(inputs.kernel_fd)) {
    case KernelFormat::kPvhElf:
      return load_pvh_elf(inputs, memory);
    case KernelFormat::kBzImage:
      return load_bzimage(inputs, memory);
  }
  throw InputError("unknown kernel format");
}

}  // namespace bulkhead::core
