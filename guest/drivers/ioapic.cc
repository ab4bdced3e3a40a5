#include "drivers/ioapic.h"

#include "arch.h"
#include "spinlock.h"

namespace guest {

namespace {
constexpr uint64_t kSelect = 0xfec00000, kWindow = 0xfec00010;
constexpr uint32_t kLevel = 1u << 15, kMasked = 1u << 16;
SpinLock lock;

void write_register(uint8_t reg, uint32_t value) {
  mmio_write32(kSelect, reg);
  mmio_write32(kWindow, value);
}
}  // namespace

void ioapic_route(uint8_t pin, uint8_t vector, bool level, uint8_t apic_id) {
  lock.lock();
  write_register(static_cast<uint8_t>(0x10 + 2 * pin + 1), static_cast<uint32_t>(apic_id) << 24);
  write_register(static_cast<uint8_t>(0x10 + 2 * pin), vector | (level ? kLevel : 0));  // fixed, physical, high
  lock.unlock();
}

void ioapic_mask(uint8_t pin) {
  lock.lock();
  write_register(static_cast<uint8_t>(0x10 + 2 * pin), kMasked);
  lock.unlock();
}

}  // namespace guest
