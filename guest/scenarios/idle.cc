// An idle guest, as an idle OS is: interrupts on, a 100 Hz timer tick, the CPU halted between
// ticks. For density and idle-cost measurements.
//   idle=SECONDS[:HZ]   (SECONDS 0 or none: until the VM is stopped; HZ default 10, since each
//                        tick costs the emulated CPL0 path on PVM)
#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "drivers/lapic.h"
#include "scenario.h"

namespace guest {

namespace {
constexpr uint8_t kTimerVector = 0x40;
constexpr uint32_t kDefaultHz = 10;
}  // namespace

bool scenario_idle(const char* arg, Context& context) {
  char seconds_text[24] = {};
  const char* hz_text = "";
  for (int i = 0; arg[i] && i < 23; ++i) {
    if (arg[i] == ':') {
      hz_text = arg + i + 1;
      break;
    }
    seconds_text[i] = arg[i];
  }
  uint64_t seconds = parse_number(seconds_text, 0), hz = parse_number(hz_text, kDefaultHz);
  if (hz == 0 || hz > 1000) hz = kDefaultHz;
  lapic_timer_periodic(kTimerVector, static_cast<uint32_t>(hz), context.tsc_per_us);
  print("BH-READY idle hz=%lu\n", hz);
  uint64_t ticks_wanted = seconds ? seconds * hz : ~0ull;
  halt_until(kTimerVector, ticks_wanted);
  lapic_timer_stop();
  uint64_t ticks = vector_count(kTimerVector);
  print("BH-RESULT idle seconds=%lu hz=%lu ticks=%lu\n", seconds, hz, ticks);
  return ticks >= ticks_wanted;
}

}  // namespace guest
