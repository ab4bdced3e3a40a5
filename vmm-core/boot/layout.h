// Where the core puts boot structures in guest RAM (all below 1 MiB, outside the kernel).
#pragma once

#include <cstdint>

namespace bulkhead::core {

inline constexpr uint64_t kBootGdtAddr = 0x500;
inline constexpr uint64_t kPvhStartInfoAddr = 0x6000;
inline constexpr uint64_t kPvhModlistAddr = 0x6040;
inline constexpr uint64_t kPvhMemmapAddr = 0x6100;
inline constexpr uint64_t kZeroPageAddr = 0x7000;      // Linux boot_params
inline constexpr uint64_t kPageTablesAddr = 0x9000;    // PML4, PDPT and four PDs: 4 GiB identity map
inline constexpr uint64_t kEbdaStart = 0x9fc00;
inline constexpr uint64_t kCmdlineAddr = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;       // including the terminating NUL
inline constexpr uint64_t kAcpiTablesAddr = 0xe0000;   // RSDP first: the BIOS area Linux scans
inline constexpr uint64_t kAcpiTablesSize = 0x10000;
inline constexpr uint64_t kHighMemoryStart = 0x100000; // kernels load at or above 1 MiB
inline constexpr uint64_t kMinimumMemory = 16ull << 20;

// GDT selectors of the boot GDT (Linux requires __BOOT_CS = 0x10, __BOOT_DS = 0x18).
inline constexpr uint16_t kBootCode32Selector = 0x08;
inline constexpr uint16_t kBootCode64Selector = 0x10;
inline constexpr uint16_t kBootDataSelector = 0x18;
inline constexpr uint16_t kBootTssSelector = 0x20;

// The boot GDT at kBootGdtAddr: null, 32-bit code, 64-bit code, data, TSS.
inline constexpr uint64_t kBootGdt[] = {0, 0x00cf9b000000ffff, 0x00af9b000000ffff, 0x00cf93000000ffff,
                                        0x00808b0000000fff};

}  // namespace bulkhead::core
