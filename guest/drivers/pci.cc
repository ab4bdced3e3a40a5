#include "drivers/pci.h"

#include "arch.h"
#include "spinlock.h"

namespace guest {

namespace {
constexpr uint16_t kAddress = 0xcf8, kData = 0xcfc;
SpinLock lock;
uint32_t address(const PciFunction& f, uint8_t offset) {
  return 0x80000000u | f.bus << 16 | f.device << 11 | f.function << 8 | (offset & 0xfc);
}
}  // namespace

uint32_t pci_read32(const PciFunction& f, uint8_t offset) {
  lock.lock();
  outl(kAddress, address(f, offset));
  uint32_t v = inl(kData);
  lock.unlock();
  return v;
}

void pci_write32(const PciFunction& f, uint8_t offset, uint32_t value) {
  lock.lock();
  outl(kAddress, address(f, offset));
  outl(kData, value);
  lock.unlock();
}

uint8_t pci_read8(const PciFunction& f, uint8_t offset) { return static_cast<uint8_t>(pci_read32(f, offset) >> (8 * (offset & 3))); }
uint16_t pci_read16(const PciFunction& f, uint8_t offset) {
  return static_cast<uint16_t>(pci_read32(f, offset) >> (8 * (offset & 2)));
}

void pci_write16(const PciFunction& f, uint8_t offset, uint16_t value) {
  uint32_t v = pci_read32(f, offset);
  int shift = 8 * (offset & 2);
  v = (v & ~(0xffffu << shift)) | (static_cast<uint32_t>(value) << shift);
  pci_write32(f, offset, v);
}

bool pci_find(uint16_t vendor, uint16_t device_id, int n, PciFunction* out) {
  for (uint8_t bus = 0; bus < 4; ++bus)
    for (uint8_t dev = 0; dev < 32; ++dev) {
      // Functions 1-7 exist only behind a multi-function device 0 (QEMU's PIIX3 IDE is 01.1).
      const PciFunction first{bus, dev, 0, 0, 0};
      const uint8_t functions = (pci_read32(first, 0) & 0xffff) != 0xffff && (pci_read8(first, 0x0e) & 0x80) ? 8 : 1;
      for (uint8_t fn = 0; fn < functions; ++fn) {
        PciFunction f{bus, dev, fn, 0, 0};
        uint32_t id = pci_read32(f, 0);
        if ((id & 0xffff) != vendor || (id >> 16) != device_id) continue;
        if (n-- > 0) continue;
        f.vendor = vendor;
        f.device_id = device_id;
        *out = f;
        return true;
      }
    }
  return false;
}

uint64_t pci_bar(const PciFunction& f, int bar) {
  uint32_t low = pci_read32(f, static_cast<uint8_t>(0x10 + 4 * bar));
  if (low & 1) return 0;  // I/O BAR
  uint64_t addr = low & ~0xfu;
  if (((low >> 1) & 3) == 2) addr |= static_cast<uint64_t>(pci_read32(f, static_cast<uint8_t>(0x14 + 4 * bar))) << 32;
  return addr;
}

uint8_t pci_capability(const PciFunction& f, uint8_t id, uint8_t after) {
  if (!(pci_read16(f, 0x06) & 0x10)) return 0;
  uint8_t at = after ? pci_read8(f, static_cast<uint8_t>(after + 1)) : pci_read8(f, 0x34);
  for (int guard = 0; at >= 0x40 && guard < 48; ++guard) {
    if (pci_read8(f, at) == id) return at;
    at = pci_read8(f, static_cast<uint8_t>(at + 1));
  }
  return 0;
}

void pci_enable(const PciFunction& f) {
  uint16_t command = pci_read16(f, 0x04);
  pci_write16(f, 0x04, command | 0x6);
}

}  // namespace guest
