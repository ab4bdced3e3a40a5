// Guest memory as a vhost-user back-end sees it: the front-end's regions (SET_MEM_TABLE or
// ADD_MEM_REG), each mapped from the descriptor it came with. Every address the guest or the
// front-end gives is translated here and checked against the regions before use.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"
#include "vhost-user/protocol.h"

namespace bulkhead::vhost_user {

// A piece of guest memory, usable by the back-end.
struct HostRange {
  uint8_t* data;
  uint64_t size;
};

class MemoryMap {
 public:
  // Maps `region` from `fd`; throws InputError for a malformed region or one overlapping
  // another (in guest-physical or front-end address space).
  void add(const MemoryRegion& region, UniqueFd fd);
  // Unmaps the region matching guest address, front-end address and size; false if none.
  bool remove(const MemoryRegion& region);
  void clear() { regions_.clear(); }
  size_t size() const { return regions_.size(); }

  // Host pointer for [gpa, gpa+len) if it lies inside one region, else nullptr.
  uint8_t* gpa_to_host(uint64_t gpa, uint64_t len) const;
  // Splits [gpa, gpa+len) at region boundaries (regions adjacent in guest-physical space);
  // appends the pieces to `out`. False if any byte is not guest memory.
  bool gpa_to_ranges(uint64_t gpa, uint64_t len, std::vector<HostRange>& out) const;
  // The guest-physical address of a host pointer into a region, if it is one.
  std::optional<uint64_t> host_to_gpa(const uint8_t* host) const;
  // Host pointer for a front-end virtual address range (vring addresses), else nullptr.
  uint8_t* uva_to_host(uint64_t uva, uint64_t len) const;

 private:
  struct Region {
    MemoryRegion desc;
    Mapping mapping;
    uint8_t* host() const { return mapping.data() + desc.mmap_offset; }
  };
  std::vector<Region> regions_;
};

}  // namespace bulkhead::vhost_user
