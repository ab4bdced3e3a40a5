// Time from the TSC, calibrated against the PIT.
#pragma once

#include <stdint.h>

namespace guest {

// TSC ticks per microsecond, measured once with PIT channel 2 (10 ms one-shot).
uint64_t tsc_ticks_per_us();
void delay_us(uint64_t us, uint64_t tsc_per_us);

}  // namespace guest
