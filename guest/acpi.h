// Finds the CPUs the firmware (or VMM) describes in the ACPI MADT, checking checksums.
#pragma once

#include <stdint.h>

namespace guest {

struct AcpiCpus {
  int count = 0;
  uint32_t apic_ids[64];
  const char* error = nullptr;  // why the tables could not be used
};

AcpiCpus acpi_find_cpus(uint64_t rsdp_hint);

}  // namespace guest
