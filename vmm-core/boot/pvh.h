// PVH boot: an ELF kernel entered in 32-bit protected mode with hvm_start_info in %ebx.
#pragma once

#include <elf.h>

#include <cstdint>
#include <vector>

#include "vmm-core/boot/kernel_image.h"

namespace bulkhead::core {

struct PvhElf {
  std::vector<Elf64_Phdr> loads;  // PT_LOAD segments, validated against the file size
  uint32_t entry;                 // from the XEN_ELFNOTE_PHYS32_ENTRY note
};

// Layouts from Xen's public/arch-x86/hvm/start_info.h (version 1).
struct HvmStartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};

struct HvmMemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

inline constexpr uint32_t kHvmStartMagic = 0x336ec578;
inline constexpr uint32_t kXenElfnotePhys32Entry = 18;

}  // namespace bulkhead::core
