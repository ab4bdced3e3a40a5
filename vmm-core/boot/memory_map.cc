#include "vmm-core/boot/memory_map.h"

#include "vmm-core/boot/layout.h"
#include "vmm-core/platform.h"

namespace bulkhead::core {

std::vector<MemoryMapEntry> build_memory_map(const GuestMemory& memory) {
  std::vector<MemoryMapEntry> map = {
      {0, kEbdaStart, MemoryType::kRam},
      {kEbdaStart, 0xa0000 - kEbdaStart, MemoryType::kReserved},
      {kAcpiTablesAddr, kAcpiTablesSize, MemoryType::kAcpi},
      {kHighMemoryStart, memory.low_end() - kHighMemoryStart, MemoryType::kRam},
      {platform::kKvmIdentityMapAddr, platform::kKvmPrivateSize, MemoryType::kReserved},
  };
  for (size_t i = 1; i < memory.regions().size(); ++i)
    map.push_back({memory.regions()[i].guest_address, memory.regions()[i].size, MemoryType::kRam});
  return map;
}

}  // namespace bulkhead::core
