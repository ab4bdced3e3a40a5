// PCI configuration mechanism 1 and BAR/capability helpers.
#pragma once

#include <stdint.h>

namespace guest {

struct PciFunction {
  uint8_t bus, device, function;
  uint16_t vendor, device_id;
};

uint32_t pci_read32(const PciFunction& f, uint8_t offset);
void pci_write32(const PciFunction& f, uint8_t offset, uint32_t value);
uint8_t pci_read8(const PciFunction& f, uint8_t offset);
uint16_t pci_read16(const PciFunction& f, uint8_t offset);
void pci_write16(const PciFunction& f, uint8_t offset, uint16_t value);

// Finds the n-th function (on buses 0-3) with this vendor and device ID.
bool pci_find(uint16_t vendor, uint16_t device_id, int n, PciFunction* out);
// The BAR's memory address (64-bit BARs included), 0 if unassigned or I/O.
uint64_t pci_bar(const PciFunction& f, int bar);
// Offset of the first capability with `id` at or after `start` (0: from the list head).
uint8_t pci_capability(const PciFunction& f, uint8_t id, uint8_t after = 0);
// Turns on memory decoding and bus mastering.
void pci_enable(const PciFunction& f);

}  // namespace guest
