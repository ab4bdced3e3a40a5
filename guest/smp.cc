#include "smp.h"

#include <string.h>

#include "arch.h"
#include "cpu.h"
#include "drivers/lapic.h"
#include "layout.h"

extern "C" uint8_t ap_trampoline_start[], ap_trampoline_end[];

namespace guest {

namespace {

struct Mailbox {
  CpuJob job;
  uint64_t arg;
  uint64_t result;
  int state;  // 0 idle, 1 job posted, 2 result ready
};

Mailbox mailboxes[GUEST_MAX_CPUS];
uint32_t apic_ids[GUEST_MAX_CPUS];
int online = 1;

void ap_user_main(uint64_t cpu) {
  lapic_enable(false);
  apic_ids[cpu] = apic_id();
  __atomic_add_fetch(&online, 1, __ATOMIC_RELEASE);
  Mailbox& box = mailboxes[cpu];
  for (;;) {
    while (__atomic_load_n(&box.state, __ATOMIC_ACQUIRE) != 1) pause();
    box.result = box.job(box.arg);
    __atomic_store_n(&box.state, 2, __ATOMIC_RELEASE);
  }
}

}  // namespace

int smp_start(int expected_aps, uint64_t tsc_per_us) {
  apic_ids[0] = apic_id();
  if (expected_aps <= 0) return 0;
  memcpy(reinterpret_cast<void*>(AP_TRAMPOLINE_ADDR), ap_trampoline_start, ap_trampoline_end - ap_trampoline_start);
  lapic_start_aps(AP_TRAMPOLINE_ADDR >> 12, tsc_per_us);
  // Each AP runs its start-up code emulated at CPL0 on this host: allow a generous 10 s.
  uint64_t deadline = rdtsc() + 10'000'000 * tsc_per_us;
  while (__atomic_load_n(&online, __ATOMIC_ACQUIRE) < expected_aps + 1 && rdtsc() < deadline) pause();
  return __atomic_load_n(&online, __ATOMIC_ACQUIRE) - 1;
}

int cpus_online() { return __atomic_load_n(&online, __ATOMIC_ACQUIRE); }
uint32_t cpu_apic_id(int cpu) { return apic_ids[cpu]; }

uint64_t smp_run_on(int cpu, CpuJob job, uint64_t arg) {
  Mailbox& box = mailboxes[cpu];
  box.job = job;
  box.arg = arg;
  __atomic_store_n(&box.state, 1, __ATOMIC_RELEASE);
  while (__atomic_load_n(&box.state, __ATOMIC_ACQUIRE) != 2) pause();
  __atomic_store_n(&box.state, 0, __ATOMIC_RELAXED);
  return box.result;
}

}  // namespace guest

// Called from boot.S on each AP, at CPL0, with its own kernel stack.
extern "C" [[noreturn]] void ap_main(int cpu) {
  guest::cpu_init(cpu);
  guest::enter_user(cpu, guest::ap_user_main, static_cast<uint64_t>(cpu));
}
