// The ACPI tables the core writes, parsed back the way a guest does.
#include "vmm-core/boot/acpi.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/unit/test_files.h"
#include "vmm-core/boot/layout.h"

namespace bulkhead::core {
namespace {

using test::get;

uint8_t sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

class AcpiTest : public ::testing::Test {
 protected:
  GuestMemory memory{32 << 20};
  const uint8_t* at(uint64_t gpa, size_t n = 36) { return memory.host_range(gpa, n); }
  const uint8_t* table(const uint8_t* xsdt, const char* signature) {
    uint32_t len = get<uint32_t>(xsdt + 4);
    for (uint32_t off = 36; off + 8 <= len; off += 8) {
      const uint8_t* t = at(get<uint64_t>(xsdt + off));
      if (std::memcmp(t, signature, 4) == 0) return at(get<uint64_t>(xsdt + off), get<uint32_t>(t + 4));
    }
    return nullptr;
  }
};

TEST_F(AcpiTest, EveryChecksumIsValid) {
  uint64_t rsdp_addr = write_acpi_tables(memory, 4);
  EXPECT_EQ(rsdp_addr, kAcpiTablesAddr) << "inside the BIOS area guests scan";
  const uint8_t* rsdp = at(rsdp_addr);
  EXPECT_EQ(std::memcmp(rsdp, "RSD PTR ", 8), 0);
  EXPECT_EQ(sum(rsdp, 20), 0);
  EXPECT_EQ(sum(rsdp, 36), 0);
  EXPECT_EQ(rsdp[15], 2);
  const uint8_t* xsdt = at(get<uint64_t>(rsdp + 24));
  EXPECT_EQ(sum(xsdt, get<uint32_t>(xsdt + 4)), 0);
  const uint8_t* rsdt = at(get<uint32_t>(rsdp + 16));
  EXPECT_EQ(sum(rsdt, get<uint32_t>(rsdt + 4)), 0);
  for (const char* sig : {"FACP", "APIC"}) {
    const uint8_t* t = table(xsdt, sig);
    ASSERT_NE(t, nullptr) << sig;
    EXPECT_EQ(sum(t, get<uint32_t>(t + 4)), 0) << sig;
  }
  const uint8_t* fadt = table(xsdt, "FACP");
  const uint8_t* dsdt = at(get<uint64_t>(fadt + 140));
  EXPECT_EQ(std::memcmp(dsdt, "DSDT", 4), 0);
  EXPECT_EQ(sum(dsdt, get<uint32_t>(dsdt + 4)), 0);
}

TEST_F(AcpiTest, MadtListsOneEnabledLocalApicPerCpuAndTheIoapic) {
  write_acpi_tables(memory, 3);
  const uint8_t* madt = table(at(get<uint64_t>(at(kAcpiTablesAddr) + 24)), "APIC");
  ASSERT_NE(madt, nullptr);
  EXPECT_EQ(get<uint32_t>(madt + 36), kLocalApicAddress);
  int cpus = 0, ioapics = 0;
  uint32_t len = get<uint32_t>(madt + 4);
  for (uint32_t e = 44; e < len; e += madt[e + 1]) {
    ASSERT_GE(madt[e + 1], 2);
    if (madt[e] == 0) {
      EXPECT_EQ(madt[e + 3], cpus) << "APIC IDs are the vCPU indices";
      EXPECT_EQ(get<uint32_t>(madt + e + 4) & 1, 1u);
      ++cpus;
    }
    if (madt[e] == 1) {
      EXPECT_EQ(get<uint32_t>(madt + e + 4), kIoapicAddress);
      ++ioapics;
    }
  }
  EXPECT_EQ(cpus, 3);
  EXPECT_EQ(ioapics, 1);
}

TEST_F(AcpiTest, FadtIsHardwareReducedWithResetAndSleepRegisters) {
  write_acpi_tables(memory, 1);
  const uint8_t* fadt = table(at(get<uint64_t>(at(kAcpiTablesAddr) + 24)), "FACP");
  ASSERT_NE(fadt, nullptr);
  EXPECT_EQ(get<uint32_t>(fadt + 4), 276u);
  EXPECT_TRUE(get<uint32_t>(fadt + 112) & (1u << 20)) << "HW_REDUCED_ACPI";
  EXPECT_EQ(get<uint64_t>(fadt + 116 + 4), kResetControlPort);
  EXPECT_EQ(fadt[128], kResetValue);
  EXPECT_EQ(get<uint64_t>(fadt + 244 + 4), kSleepControlPort);
}

TEST_F(AcpiTest, DsdtDefinesS5) {
  write_acpi_tables(memory, 1);
  const uint8_t* fadt = table(at(get<uint64_t>(at(kAcpiTablesAddr) + 24)), "FACP");
  const uint8_t* dsdt = at(get<uint64_t>(fadt + 140), 64);
  EXPECT_EQ(std::memcmp(dsdt + 37, "_S5_", 4), 0);
  EXPECT_EQ(dsdt[45], kSleepTypeS5);
}

}  // namespace
}  // namespace bulkhead::core
