// Kernel images the core boots: an ELF with a PVH entry note, or a Linux bzImage (64-bit
// entry). The launcher probes with the same code so bad images fail before any process starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vmm-core/boot/memory_map.h"
#include "vmm-core/guest_memory.h"

namespace bulkhead::core {

enum class KernelFormat { kPvhElf, kBzImage };

// Throws InputError naming the problem if `fd` holds neither format.
KernelFormat probe_kernel(int fd);

struct BootInputs {
  int kernel_fd;
  int initrd_fd;  // -1: none
  std::string cmdline;
  std::vector<MemoryMapEntry> memory_map;
  uint64_t rsdp_address;
};

// How the boot CPU starts.
struct BootEntry {
  enum class Mode { kProtected32, kLong64 } mode;
  uint64_t rip;
  uint64_t rbx;  // PVH: hvm_start_info
  uint64_t rsi;  // Linux: boot_params
};

BootEntry load_kernel(const BootInputs& inputs, const GuestMemory& memory);

// Helpers shared by the loaders.
uint64_t file_size(int fd, const char* what);
void read_at(int fd, void* buffer, uint64_t length, uint64_t offset, const char* what);
void write_cmdline(const std::string& cmdline, const GuestMemory& memory);
// Loads the initrd at the top of low RAM, above `lowest`, below `highest`; returns its address.
uint64_t load_initrd(int fd, uint64_t lowest, uint64_t highest, const GuestMemory& memory, uint64_t* size);

struct PvhElf;
struct BzImage;
PvhElf read_pvh_elf(int fd);
BzImage read_bzimage(int fd);
BootEntry load_pvh_elf(const BootInputs& inputs, const GuestMemory& memory);
BootEntry load_bzimage(const BootInputs& inputs, const GuestMemory& memory);

}  // namespace bulkhead::core
