#include "acpi.h"

#include <string.h>

namespace guest {

namespace {

bool checksum_ok(const uint8_t* p, uint32_t length) {
  uint8_t sum = 0;
  for (uint32_t i = 0; i < length; ++i) sum += p[i];
  return sum == 0;
}

const uint8_t* find_rsdp(uint64_t hint) {
  if (hint) return reinterpret_cast<const uint8_t*>(hint);
  // The EBDA's first KiB, then the BIOS area 0xe0000-0xfffff, on 16-byte boundaries.
  uint64_t ebda = static_cast<uint64_t>(*reinterpret_cast<const uint16_t*>(0x40e)) << 4;
  uint64_t areas[2][2] = {{ebda, ebda + 1024}, {0xe0000, 0x100000}};
  for (auto& area : areas) {
    if (!area[0]) continue;
    for (uint64_t a = area[0]; a < area[1]; a += 16)
      if (memcmp(reinterpret_cast<const void*>(a), "RSD PTR ", 8) == 0 &&
          checksum_ok(reinterpret_cast<const uint8_t*>(a), 20))
        return reinterpret_cast<const uint8_t*>(a);
  }
  return nullptr;
}

uint32_t read32(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
uint64_t read64(const uint8_t* p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

}  // namespace

AcpiCpus acpi_find_cpus(uint64_t rsdp_hint) {
  AcpiCpus result;
  const uint8_t* rsdp = find_rsdp(rsdp_hint);
  if (!rsdp) return result.error = "no RSDP", result;
  if (memcmp(rsdp, "RSD PTR ", 8) != 0 || !checksum_ok(rsdp, 20)) return result.error = "bad RSDP checksum", result;
  bool use_xsdt = rsdp[15] >= 2 && read64(rsdp + 24);
  if (use_xsdt && !checksum_ok(rsdp, read32(rsdp + 20))) return result.error = "bad RSDP extended checksum", result;
  auto* root = reinterpret_cast<const uint8_t*>(use_xsdt ? read64(rsdp + 24) : read32(rsdp + 16));
  uint32_t root_len = read32(root + 4);
  if (!checksum_ok(root, root_len)) return result.error = "bad XSDT/RSDT checksum", result;
  int entry_size = use_xsdt ? 8 : 4;
  for (uint32_t off = 36; off + entry_size <= root_len; off += entry_size) {
    auto* table = reinterpret_cast<const uint8_t*>(use_xsdt ? read64(root + off) : read32(root + off));
    if (memcmp(table, "APIC", 4) != 0) continue;
    uint32_t len = read32(table + 4);
    if (!checksum_ok(table, len)) return result.error = "bad MADT checksum", result;
    for (uint32_t e = 44; e + 2 <= len && table[e + 1] >= 2; e += table[e + 1]) {
      uint8_t type = table[e];
      if (type == 0 && (read32(table + e + 4) & 1) && result.count < 64)
        result.apic_ids[result.count++] = table[e + 3];
      if (type == 9 && (read32(table + e + 8) & 1) && result.count < 64)
        result.apic_ids[result.count++] = read32(table + e + 4);
    }
    return result;
  }
  result.error = "no MADT";
  return result;
}

}  // namespace guest
