// What the loader told us: the PVH start_info (command line, memory map, ACPI RSDP).
#pragma once

#include <stdint.h>

namespace guest {

struct MemoryRange {
  uint64_t base, size;
  uint32_t type;  // 1 = RAM, 2 = reserved, 3 = ACPI, ...
};

struct BootInfo {
  const char* cmdline = "";
  uint64_t rsdp = 0;
  uint64_t initrd = 0;  // first PVH module, if any
  uint64_t initrd_size = 0;
  MemoryRange ranges[32];
  int range_count = 0;
  bool valid = false;
};

BootInfo read_boot_info(uint32_t start_info_paddr);

}  // namespace guest
