// Bringing up the other CPUs and running work on them (at CPL3).
#pragma once

#include <stdint.h>

namespace guest {

using CpuJob = uint64_t (*)(uint64_t arg);

// Starts every AP (INIT-SIPI-SIPI) and waits until `expected_aps` are online or time runs out.
// Returns how many came online.
int smp_start(int expected_aps, uint64_t tsc_per_us);
int cpus_online();  // including the BSP
uint32_t cpu_apic_id(int cpu);
// Runs job(arg) on `cpu` (1..cpus_online()-1) and waits for its result.
uint64_t smp_run_on(int cpu, CpuJob job, uint64_t arg);

}  // namespace guest
