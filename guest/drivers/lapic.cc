#include "drivers/lapic.h"

#include "arch.h"
#include "timing.h"

namespace guest {

namespace {
constexpr uint64_t kBase = 0xfee00000;
constexpr uint32_t kSvr = 0xf0, kIcrLow = 0x300, kIcrHigh = 0x310, kLvtLint0 = 0x350, kLvtLint1 = 0x360;
constexpr uint32_t kLvtTimer = 0x320, kTimerInitial = 0x380, kTimerCurrent = 0x390, kTimerDivide = 0x3e0;
constexpr uint32_t kLvtMasked = 1u << 16, kLvtPeriodic = 1u << 17;
constexpr uint32_t kIcrDeliveryPending = 1u << 12;
constexpr uint32_t kAllExcludingSelf = 3u << 18;

void wait_idle() {
  while (mmio_read32(kBase + kIcrLow) & kIcrDeliveryPending) pause();
}
}  // namespace

void lapic_enable(bool bsp) {
  mmio_write32(kBase + kSvr, 0x100 | 0xff);
  if (bsp) mmio_write32(kBase + kLvtLint0, 0x700);  // ExtINT, unmasked
  mmio_write32(kBase + kLvtLint1, 0x400);             // NMI
}

void lapic_start_aps(uint8_t vector, uint64_t tsc_per_us) {
  mmio_write32(kBase + kIcrHigh, 0);
  mmio_write32(kBase + kIcrLow, kAllExcludingSelf | 0x4500);  // INIT, assert
  wait_idle();
  delay_us(10000, tsc_per_us);
  for (int i = 0; i < 2; ++i) {
    mmio_write32(kBase + kIcrLow, kAllExcludingSelf | 0x4600 | vector);  // STARTUP
    wait_idle();
    delay_us(200, tsc_per_us);
  }
}

void lapic_timer_periodic(uint8_t vector, uint32_t hz, uint64_t tsc_per_us) {
  mmio_write32(kBase + kTimerDivide, 0x3);  // divide by 16
  mmio_write32(kBase + kLvtTimer, kLvtMasked | vector);
  mmio_write32(kBase + kTimerInitial, 0xffffffff);
  delay_us(10000, tsc_per_us);
  uint32_t per_10ms = 0xffffffff - mmio_read32(kBase + kTimerCurrent);
  mmio_write32(kBase + kLvtTimer, kLvtPeriodic | vector);
  mmio_write32(kBase + kTimerInitial, static_cast<uint32_t>(per_10ms * 100ull / hz));
}

void lapic_timer_stop() {
  mmio_write32(kBase + kLvtTimer, kLvtMasked);
  mmio_write32(kBase + kTimerInitial, 0);
}

}  // namespace guest
