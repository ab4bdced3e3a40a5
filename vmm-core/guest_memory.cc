#include "vmm-core/guest_memory.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/error.h"

namespace bulkhead::core {

GuestMemory::GuestMemory(uint64_t size, bool hugepages) : size_(size), page_size_(hugepages ? kHugePage : 4096) {
  if (hugepages && size % kHugePage) throw InputError("guest RAM in 2 MiB pages must be a multiple of 2 MiB");
  // An anonymous memory file; devices later map the same pages through this fd.
  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (hugepages ? MFD_HUGETLB | MFD_HUGE_2MB : 0);
  memfd_.reset(::memfd_create("bulkhead-guest-ram", flags));
  if (!memfd_) throw_errno(hugepages ? "memfd_create for guest RAM in 2 MiB pages" : "memfd_create for guest RAM");
  if (::ftruncate(memfd_.get(), static_cast<off_t>(size)) != 0)
    throw_errno("sizing guest RAM to " + std::to_string(size) + " bytes");
  // No process that receives this fd may grow or shrink it (a shrink would SIGBUS the core).
  if (::fcntl(memfd_.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
    throw_errno("sealing guest RAM");
  // Ordinary pages are allocated as the guest touches them; huge pages are reserved here.
  int map_flags = MAP_SHARED | (hugepages ? 0 : MAP_NORESERVE);
  try {
    mapping_ = Mapping::map(memfd_.get(), size, PROT_READ | PROT_WRITE, map_flags);
  } catch (const std::exception& e) {
    if (!hugepages) throw;
    throw InputError("guest RAM needs " + std::to_string(size / kHugePage) +
                     " free 2 MiB huge pages, and the pool does not have them (" + e.what() + ")");
  }
  uint64_t low = std::min(size, kPciHoleStart);
  regions_.push_back({0, low, 0, mapping_.data()});
  if (size > low) regions_.push_back({k4GiB, size - low, low, mapping_.data() + low});
}

uint8_t* GuestMemory::host_range(uint64_t gpa, uint64_t length) const {
  for (const RamRegion& r : regions_) {
    if (gpa >= r.guest_address && gpa - r.guest_address <= r.size && length <= r.size - (gpa - r.guest_address))
      return r.host + (gpa - r.guest_address);
  }
  return nullptr;
}

uint8_t* GuestMemory::require_range(uint64_t gpa, uint64_t length, const char* what) const {
  uint8_t* host = host_range(gpa, length);
  if (!host) {
    char buffer[160];
    std::snprintf(buffer, sizeof buffer, "%s at guest address 0x%llx (+0x%llx bytes) is outside guest RAM", what,
                  static_cast<unsigned long long>(gpa), static_cast<unsigned long long>(length));
    throw InputError(buffer);
  }
  return host;
}

void GuestMemory::write(uint64_t gpa, std::span<const uint8_t> bytes, const char* what) const {
  std::memcpy(require_range(gpa, bytes.size(), what), bytes.data(), bytes.size());
}

void GuestMemory::zero(uint64_t gpa, uint64_t length, const char* what) const {
  uint8_t* host = require_range(gpa, length, what);
  uint64_t offset = static_cast<uint64_t>(host - mapping_.data());  // into the memfd: mapped at 0
  uint64_t first = (offset + page_size_ - 1) / page_size_ * page_size_, last = (offset + length) / page_size_ * page_size_;
  if (last <= first) {
    std::memset(host, 0, length);
    return;
  }
  // Punches whole pages [first, last) of our own memfd, which covers them (sized to guest RAM).
  if (::fallocate(memfd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(first),
                  static_cast<off_t>(last - first)) != 0)
    throw_errno(std::string("zeroing ") + what);
  std::memset(host, 0, first - offset);
  std::memset(host + (last - offset), 0, offset + length - last);
}

}  // namespace bulkhead::core
