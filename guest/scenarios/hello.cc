// Reports what the guest was given: memory map and CPUs.
#include "acpi.h"
#include "console.h"
#include "scenario.h"

namespace guest {

bool scenario_hello(const char*, Context& context) {
  print("Hello from the Bulkhead test guest\n");
  uint64_t ram = 0;
  for (int i = 0; i < context.boot.range_count; ++i) {
    const MemoryRange& r = context.boot.ranges[i];
    print("BH-MEMMAP base=0x%lx size=0x%lx type=%u\n", r.base, r.size, r.type);
    if (r.type == 1) ram += r.size;
  }
  // The initrd's size and a checksum (sum of its bytes), for the host to compare.
  uint32_t initrd_sum = 0;
  auto* initrd = reinterpret_cast<const uint8_t*>(context.boot.initrd);
  for (uint64_t i = 0; i < context.boot.initrd_size; ++i) initrd_sum += initrd[i];
  print("BH-RESULT initrd size=%lu sum=%u\n", context.boot.initrd_size, initrd_sum);
  AcpiCpus cpus = acpi_find_cpus(context.boot.rsdp);
  print("BH-RESULT hello ram_kib=%lu memmap_entries=%d acpi_cpus=%d acpi_error=%s tsc_per_us=%lu\n", ram >> 10,
        context.boot.range_count, cpus.count, cpus.error ? cpus.error : "none", context.tsc_per_us);
  return context.boot.valid && ram > 0;
}

}  // namespace guest
