// The guest's physical memory map, as E820 / PVH memmap entries.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm-core/guest_memory.h"

namespace bulkhead::core {

enum class MemoryType : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3 };

struct MemoryMapEntry {
  uint64_t address;
  uint64_t size;
  MemoryType type;
};

std::vector<MemoryMapEntry> build_memory_map(const GuestMemory& memory);

}  // namespace bulkhead::core
