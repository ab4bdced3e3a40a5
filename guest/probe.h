// Restart-latency probes (bench/restart_latency.py): for `arg` seconds (default 10), one access
// that the device must answer, again and again, and a report of every one that took 2 ms or
// more ("BH-STALL NAME us=N", printed once the device answers again); the host kills the
// device's process meanwhile.
#pragma once

#include <stdint.h>

#include "arch.h"
#include "console.h"
#include "scenario.h"

namespace guest {

// `access(i)` does the i-th access; false when the device refused it.
template <typename Access>
bool probe_stalls(const char* name, const char* arg, Context& context, Access access) {
  const uint64_t end = rdtsc() + parse_number(arg, 10) * 1'000'000 * context.tsc_per_us;
  const uint64_t stall = 2000 * context.tsc_per_us;
  print("BH-READY %s-probe\n", name);
  uint64_t accesses = 0, stalls = 0, refused = 0;
  for (uint64_t before = rdtsc(); before < end; before = rdtsc()) {
    refused += !access(accesses++);
    uint64_t waited = rdtsc() - before;
    if (waited < stall) continue;
    ++stalls;
    print("BH-STALL %s us=%lu\n", name, waited / context.tsc_per_us);
  }
  print("BH-RESULT %s-probe %s accesses=%lu stalls=%lu refused=%lu\n", name, refused ? "failed" : "ok", accesses,
        stalls, refused);
  return refused == 0;
}

}  // namespace guest
