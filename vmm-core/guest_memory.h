// Guest RAM: one sealed memfd, mapped once, split around the 32-bit PCI hole.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"

namespace bulkhead::core {

// RAM below this address is "low"; the rest moves above 4 GiB, leaving room for MMIO.
inline constexpr uint64_t kPciHoleStart = 0xc000'0000;
inline constexpr uint64_t k4GiB = 0x1'0000'0000;

struct RamRegion {
  uint64_t guest_address;
  uint64_t size;
  uint64_t file_offset;  // into the memfd
  uint8_t* host;
};

class GuestMemory {
 public:
  static constexpr uint64_t kHugePage = 2ull << 20;
  // With `hugepages`, RAM comes from the hugetlb pool in 2 MiB pages, all reserved now, so a
  // short pool fails here and not with a SIGBUS when the guest first touches a page.
  explicit GuestMemory(uint64_t size, bool hugepages = false);

  int fd() const { return memfd_.get(); }
  uint64_t size() const { return size_; }
  const std::vector<RamRegion>& regions() const { return regions_; }
  uint64_t low_end() const { return regions_.front().size; }

  // Host address of [gpa, gpa+length) if it lies inside one RAM region, else nullptr.
  uint8_t* host_range(uint64_t gpa, uint64_t length) const;
  // Like host_range, but throws an error naming `what` when the range is not RAM.
  uint8_t* require_range(uint64_t gpa, uint64_t length, const char* what) const;
  void write(uint64_t gpa, std::span<const uint8_t> bytes, const char* what) const;
  // Zeroes [gpa, gpa+length): whole pages are punched out of the memfd (they read zero and
  // take no host memory until the guest touches them), the partial ones at the edges cleared.
  void zero(uint64_t gpa, uint64_t length, const char* what) const;

 private:
  uint64_t size_;
  uint64_t page_size_;  // of the memfd: 4 KiB, or 2 MiB with hugepages
  UniqueFd memfd_;
  Mapping mapping_;
  std::vector<RamRegion> regions_;
};

}  // namespace bulkhead::core
