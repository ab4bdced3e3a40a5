// The local APIC, through its MMIO page (user-accessible in the guest's identity map).
#pragma once

#include <stdint.h>

namespace guest {

// Software-enables this CPU's local APIC; on the BSP, LINT0 becomes ExtINT so the 8259's
// interrupts reach the CPU, as firmware leaves it on a PC.
void lapic_enable(bool bsp);
// INIT, then two STARTUP IPIs with `vector` (start address = vector << 12), to all others.
void lapic_start_aps(uint8_t vector, uint64_t tsc_per_us);
// Starts this CPU's APIC timer: `vector` every 1/hz s (calibrated against the TSC).
void lapic_timer_periodic(uint8_t vector, uint32_t hz, uint64_t tsc_per_us);
void lapic_timer_stop();

}  // namespace guest
