#include "boot_info.h"

namespace guest {

namespace {
struct StartInfo {
  uint32_t magic, version, flags, nr_modules;
  uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
  uint32_t memmap_entries, reserved;
};
struct ModlistEntry {
  uint64_t paddr, size, cmdline_paddr, reserved;
};
struct MemmapEntry {
  uint64_t addr, size;
  uint32_t type, reserved;
};
constexpr uint32_t kStartInfoMagic = 0x336ec578;
}  // namespace

BootInfo read_boot_info(uint32_t paddr) {
  BootInfo info;
  // The loader put start_info at `paddr`; the first 4 GiB are identity-mapped.
  auto* si = reinterpret_cast<const StartInfo*>(static_cast<uint64_t>(paddr));
  if (!si || si->magic != kStartInfoMagic) return info;
  info.valid = true;
  if (si->cmdline_paddr) info.cmdline = reinterpret_cast<const char*>(si->cmdline_paddr);
  info.rsdp = si->rsdp_paddr;
  if (si->nr_modules && si->modlist_paddr) {
    auto* module = reinterpret_cast<const ModlistEntry*>(si->modlist_paddr);
    info.initrd = module->paddr;
    info.initrd_size = module->size;
  }
  if (si->version >= 1 && si->memmap_paddr) {
    auto* entries = reinterpret_cast<const MemmapEntry*>(si->memmap_paddr);
    for (uint32_t i = 0; i < si->memmap_entries && info.range_count < 32; ++i)
      info.ranges[info.range_count++] = {entries[i].addr, entries[i].size, entries[i].type};
  }
  return info;
}

}  // namespace guest
