// ACPI tables for the guest (RSDP, XSDT/RSDT, FADT, FACS, MADT, DSDT), describing the PC in
// platform.h and the legacy devices of this VM. Returns the RSDP's address.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vmm-core/guest_memory.h"

namespace bulkhead::core {

// An ISA device the DSDT describes, so that an ACPI guest finds it and its interrupt.
struct AcpiIsaDevice {
  std::string name;  // ACPI name segment, e.g. "COM1"
  std::string hid;   // EISA ID, e.g. "PNP0501"
  uint32_t uid = 0;
  struct Ports {
    uint16_t base;
    uint8_t length;
  };
  std::vector<Ports> ports;
  std::vector<uint8_t> irqs;  // ISA IRQs, edge-triggered
};

struct AcpiPlatform {
  uint32_t cpus = 1;
  std::vector<AcpiIsaDevice> isa_devices;
};

// The DSDT's AML: \_S5, the PCI host bridge with its windows and _PRT, the ISA devices and
// the motherboard resources. Throws InputError for a device the tables cannot describe.
std::vector<uint8_t> build_dsdt(const AcpiPlatform& platform);

uint64_t write_acpi_tables(const GuestMemory& memory, const AcpiPlatform& platform);

}  // namespace bulkhead::core
