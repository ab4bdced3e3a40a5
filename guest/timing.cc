#include "timing.h"

#include "arch.h"

namespace guest {

namespace {
constexpr uint16_t kPitChannel0 = 0x40, kPitCommand = 0x43;
constexpr uint64_t kPitHz = 1193182;
constexpr uint64_t kCalibrationPitTicks = kPitHz / 100;  // 10 ms
uint64_t cached_ticks_per_us;

uint16_t read_pit_channel0() {
  outb(kPitCommand, 0x00);  // latch channel 0
  uint8_t lo = inb(kPitChannel0);
  uint8_t hi = inb(kPitChannel0);
  return static_cast<uint16_t>(lo | hi << 8);
}
}  // namespace

uint64_t tsc_ticks_per_us() {
  if (cached_ticks_per_us) return cached_ticks_per_us;
  // Channel 0 as a free-running rate generator over the full 16-bit range; its IRQ 0 stays
  // masked at the PIC. (Channel 2's gate on port 0x61 is not emulated everywhere.)
  outb(kPitCommand, 0x34);
  outb(kPitChannel0, 0xff);
  outb(kPitChannel0, 0xff);
  uint16_t previous = read_pit_channel0();
  uint64_t start = rdtsc();
  uint64_t elapsed = 0;
  for (int polls = 0; elapsed < kCalibrationPitTicks; ++polls) {
    uint16_t now = read_pit_channel0();
    elapsed += static_cast<uint16_t>(previous - now);
    previous = now;
    if (polls > 1000000) return cached_ticks_per_us = 1000;  // no PIT: assume 1 GHz
  }
  uint64_t ticks = rdtsc() - start;
  cached_ticks_per_us = ticks * kPitHz / (elapsed * 1000000);
  if (!cached_ticks_per_us) cached_ticks_per_us = 1;
  return cached_ticks_per_us;
}

void delay_us(uint64_t us, uint64_t tsc_per_us) {
  uint64_t end = rdtsc() + us * tsc_per_us;
  while (rdtsc() < end) pause();
}

}  // namespace guest
