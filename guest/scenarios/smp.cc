// Starts every CPU the ACPI MADT lists and runs a job on each at CPL3.
#include "acpi.h"
#include "console.h"
#include "scenario.h"
#include "smp.h"

namespace guest {

namespace {
uint64_t sum_job(uint64_t n) {
  uint64_t sum = 0;
  for (uint64_t i = 1; i <= n; ++i) sum += i;
  return sum;
}
}  // namespace

bool scenario_smp(const char*, Context& context) {
  AcpiCpus acpi = acpi_find_cpus(context.boot.rsdp);
  if (acpi.error) {
    print("BH-RESULT smp error=\"%s\"\n", acpi.error);
    return false;
  }
  int started = smp_start(acpi.count - 1, context.tsc_per_us);
  bool ok = started == acpi.count - 1;
  char ids[256];
  int pos = 0;
  for (int cpu = 0; cpu < cpus_online(); ++cpu) {
    uint64_t n = 100000 + cpu;
    uint64_t result = cpu == 0 ? sum_job(n) : smp_run_on(cpu, sum_job, n);
    if (result != n * (n + 1) / 2) ok = false;
    pos += snprint(ids + pos, static_cast<int>(sizeof ids) - pos, cpu ? ",%u" : "%u", cpu_apic_id(cpu));
    bool listed = false;  // each CPU's own local APIC ID is one the MADT lists
    for (int i = 0; i < acpi.count; ++i) listed |= acpi.apic_ids[i] == cpu_apic_id(cpu);
    ok &= listed;
  }
  print("BH-RESULT smp cpus_expected=%d cpus_online=%d apic_ids=%s jobs=%s\n", acpi.count, cpus_online(), ids,
        ok ? "ok" : "wrong");
  return ok;
}

}  // namespace guest
