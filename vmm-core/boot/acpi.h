// ACPI tables for the guest: RSDP, XSDT/RSDT, FADT (hardware-reduced), an empty DSDT and a
// MADT listing the local APICs and the in-kernel IOAPIC. Returns the RSDP's address.
#pragma once

#include <cstdint>

#include "vmm-core/guest_memory.h"

namespace bulkhead::core {

inline constexpr uint64_t kIoapicAddress = 0xfec00000;
inline constexpr uint64_t kLocalApicAddress = 0xfee00000;

uint64_t write_acpi_tables(const GuestMemory& memory, uint32_t cpus);

}  // namespace bulkhead::core
