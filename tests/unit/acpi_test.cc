// The ACPI tables the core writes, parsed back the way a guest does, and the DSDT's AML
// disassembled by ACPICA's own iasl (the interpreter Linux uses shares its parser).
#include "vmm-core/boot/acpi.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/error.h"
#include "tests/support/lab.h"
#include "tests/support/subprocess.h"
#include "tests/unit/test_files.h"
#include "vmm-core/boot/aml.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/platform.h"

namespace bulkhead::core {
namespace {

using test::get;
namespace pf = platform;

uint8_t sum(const uint8_t* p, size_t n) {
  uint8_t s = 0;
  for (size_t i = 0; i < n; ++i) s += p[i];
  return s;
}

AcpiPlatform with_com1(uint32_t cpus) {
  return {cpus, {{"COM1", "PNP0501", 1, {{0x3f8, 8}}, {4}}}};
}

class AcpiTest : public ::testing::Test {
 protected:
  GuestMemory memory{32 << 20};
  const uint8_t* at(uint64_t gpa, size_t n = 36) { return memory.host_range(gpa, n); }
  const uint8_t* xsdt() { return at(get<uint64_t>(at(kAcpiTablesAddr) + 24)); }
  const uint8_t* table(const char* signature) {
    const uint8_t* x = xsdt();
    uint32_t len = get<uint32_t>(x + 4);
    for (uint32_t off = 36; off + 8 <= len; off += 8) {
      const uint8_t* t = at(get<uint64_t>(x + off));
      if (std::memcmp(t, signature, 4) == 0) return at(get<uint64_t>(x + off), get<uint32_t>(t + 4));
    }
    return nullptr;
  }
};

TEST_F(AcpiTest, EveryChecksumIsValid) {
  uint64_t rsdp_addr = write_acpi_tables(memory, with_com1(4));
  EXPECT_EQ(rsdp_addr, kAcpiTablesAddr) << "inside the BIOS area guests scan";
  const uint8_t* rsdp = at(rsdp_addr);
  EXPECT_EQ(std::memcmp(rsdp, "RSD PTR ", 8), 0);
  EXPECT_EQ(sum(rsdp, 20), 0);
  EXPECT_EQ(sum(rsdp, 36), 0);
  EXPECT_EQ(rsdp[15], 2);
  EXPECT_EQ(sum(xsdt(), get<uint32_t>(xsdt() + 4)), 0);
  const uint8_t* rsdt = at(get<uint32_t>(rsdp + 16));
  EXPECT_EQ(sum(rsdt, get<uint32_t>(rsdt + 4)), 0);
  for (const char* sig : {"FACP", "APIC"}) {
    const uint8_t* t = table(sig);
    ASSERT_NE(t, nullptr) << sig;
    EXPECT_EQ(sum(t, get<uint32_t>(t + 4)), 0) << sig;
  }
  const uint8_t* fadt = table("FACP");
  const uint8_t* dsdt = at(get<uint64_t>(fadt + 140));
  EXPECT_EQ(std::memcmp(dsdt, "DSDT", 4), 0);
  EXPECT_EQ(sum(dsdt, get<uint32_t>(dsdt + 4)), 0);
  const uint8_t* facs = at(get<uint32_t>(fadt + 36), 64);
  EXPECT_EQ(std::memcmp(facs, "FACS", 4), 0);
  EXPECT_EQ(get<uint32_t>(fadt + 36) % 64, 0u) << "the FACS is 64-byte aligned";
  EXPECT_EQ(get<uint64_t>(fadt + 132), 0u) << "X_FIRMWARE_CTRL must be 0 when FIRMWARE_CTRL is set";
}

TEST_F(AcpiTest, MadtListsCpusTheIoapicAndTheSciOverride) {
  write_acpi_tables(memory, with_com1(3));
  const uint8_t* madt = table("APIC");
  ASSERT_NE(madt, nullptr);
  EXPECT_EQ(get<uint32_t>(madt + 36), pf::kLocalApicAddress);
  EXPECT_EQ(get<uint32_t>(madt + 40) & 1, 1u) << "PCAT_COMPAT: the 8259s exist";
  int cpus = 0, ioapics = 0, sci_overrides = 0;
  uint32_t len = get<uint32_t>(madt + 4);
  for (uint32_t e = 44; e < len; e += madt[e + 1]) {
    ASSERT_GE(madt[e + 1], 2);
    if (madt[e] == 0) {
      EXPECT_EQ(madt[e + 3], cpus) << "APIC IDs are the vCPU indices";
      EXPECT_EQ(get<uint32_t>(madt + e + 4) & 1, 1u);
      ++cpus;
    }
    if (madt[e] == 1) {
      EXPECT_EQ(get<uint32_t>(madt + e + 4), pf::kIoapicAddress);
      ++ioapics;
    }
    if (madt[e] == 2 && madt[e + 3] == pf::kSciIrq) {
      EXPECT_EQ(get<uint32_t>(madt + e + 4), pf::kSciIrq);
      EXPECT_EQ(get<uint16_t>(madt + e + 8), 0x000du) << "level-triggered, active high";
      ++sci_overrides;
    }
  }
  EXPECT_EQ(cpus, 3);
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(sci_overrides, 1);
}

TEST_F(AcpiTest, FadtDescribesFullAcpiFixedHardware) {
  write_acpi_tables(memory, with_com1(1));
  const uint8_t* fadt = table("FACP");
  ASSERT_NE(fadt, nullptr);
  EXPECT_EQ(get<uint32_t>(fadt + 4), 276u);
  uint32_t flags = get<uint32_t>(fadt + 112);
  EXPECT_FALSE(flags & (1u << 20)) << "not HW_REDUCED_ACPI: legacy IRQs must exist for ISA-era drivers";
  EXPECT_FALSE(flags & (1u << 4)) << "PWR_BUTTON clear: the fixed-feature power button exists";
  EXPECT_TRUE(flags & (1u << 8)) << "TMR_VAL_EXT: a 32-bit PM timer";
  EXPECT_EQ(get<uint16_t>(fadt + 46), pf::kSciIrq);
  EXPECT_EQ(get<uint32_t>(fadt + 48), 0u) << "no SMI_CMD: always in ACPI mode";
  EXPECT_EQ(get<uint32_t>(fadt + 56), pf::kPm1EventBlock);
  EXPECT_EQ(get<uint32_t>(fadt + 64), pf::kPm1ControlBlock);
  EXPECT_EQ(get<uint32_t>(fadt + 76), pf::kPmTimerBlock);
  EXPECT_EQ(fadt[88], 4);
  EXPECT_EQ(fadt[89], 2);
  EXPECT_EQ(fadt[91], 4);
  // The 64-bit (X_) blocks agree with the 32-bit ones, or ACPICA warns about firmware bugs.
  EXPECT_EQ(get<uint64_t>(fadt + 148 + 4), pf::kPm1EventBlock);
  EXPECT_EQ(fadt[148 + 1], 32);
  EXPECT_EQ(get<uint64_t>(fadt + 172 + 4), pf::kPm1ControlBlock);
  EXPECT_EQ(fadt[172 + 1], 16);
  EXPECT_EQ(get<uint64_t>(fadt + 208 + 4), pf::kPmTimerBlock);
  EXPECT_EQ(fadt[208 + 1], 32);
  EXPECT_EQ(get<uint32_t>(fadt + 40), get<uint64_t>(fadt + 140)) << "DSDT";
  EXPECT_TRUE(flags & (1u << 10)) << "RESET_REG_SUP";
  EXPECT_EQ(get<uint64_t>(fadt + 116 + 4), pf::kResetControlPort);
  EXPECT_EQ(fadt[128], pf::kResetValue);
  EXPECT_EQ(get<uint64_t>(fadt + 244 + 4), 0u) << "no hardware-reduced sleep registers";
}

// The DSDT as ACPICA's disassembler prints it.
std::string disassembled_dsdt(const AcpiPlatform& platform, std::string* why) {
  test::TempDir dir;
  std::vector<uint8_t> aml = build_dsdt(platform);
  std::ofstream(dir.file("dsdt.aml"), std::ios::binary).write(reinterpret_cast<const char*>(aml.data()), aml.size());
  std::string output;
  if (test::run_command("cd '" + dir.path() + "' && iasl -d dsdt.aml", &output) != 0) {
    *why = output;
    return "";
  }
  std::stringstream text;
  text << std::ifstream(dir.file("dsdt.dsl")).rdbuf();
  return text.str();
}

bool contains(const std::string& text, const std::string& pattern) {
  return std::regex_search(text, std::regex(pattern));
}

TEST(Dsdt, DisassemblesIntoTheHostBridgeTheComPortAndS5) {
  if (!test::have_program("iasl")) GTEST_SKIP() << "needs iasl (acpica-tools; scripts/setup.sh installs it)";
  std::string why;
  std::string dsl = disassembled_dsdt(with_com1(1), &why);
  ASSERT_FALSE(dsl.empty()) << why;
  EXPECT_FALSE(contains(dsl, "Error|Unknown|Unexpected")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(Name \(\\_S5, Package \(0x04\)[^\n]*\s*\{\s*0x05,)")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(Device \(PCI0\)\s*\{\s*Name \(_HID, EisaId \("PNP0A03"\))")) << dsl;
  // Windows that match where the core places BARs, around the configuration ports.
  EXPECT_TRUE(contains(dsl, R"(WordBusNumber \([^\n]*\n\s*0x0000,[^\n]*\n\s*0x0000,[^\n]*\n\s*0x0000,)")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(0x0000,[^\n]*\n\s*0x0CF7,)")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(0x0D00,[^\n]*\n\s*0xFFFF,)")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(0xC0000000,[^\n]*\n\s*0xFEBFFFFF,)")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(Device \(COM1\)\s*\{\s*Name \(_HID, EisaId \("PNP0501"\))")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(IO \(Decode16,\s*0x03F8,[^\n]*\s*0x03F8,[^\n]*\s*0x01,[^\n]*\s*0x08,)")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(IRQNoFlags \(\)\s*\{4\})")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(Device \(SYSR\)\s*\{\s*Name \(_HID, EisaId \("PNP0C02"\))")) << dsl;
  EXPECT_TRUE(contains(dsl, R"(IO \(Decode16,\s*0x0600,)")) << "the ACPI PM block is reserved\n" << dsl;
}

TEST(Dsdt, RoutesEverySlotsInterruptPinsToTheGsisTheCoreUses) {
  if (!test::have_program("iasl")) GTEST_SKIP() << "needs iasl (acpica-tools; scripts/setup.sh installs it)";
  std::string why;
  std::string dsl = disassembled_dsdt(with_com1(1), &why);
  ASSERT_FALSE(dsl.empty()) << why;
  int routes = 0;
  std::regex entry(R"(Package \(0x04\)\s*\{\s*0x00([0-9A-F]{2})FFFF,\s*(Zero|One|0x0[23]),\s*Zero,\s*0x([0-9A-F]{2})\s*\})");
  for (auto it = std::sregex_iterator(dsl.begin(), dsl.end(), entry); it != std::sregex_iterator(); ++it) {
    uint32_t slot = std::stoul((*it)[1], nullptr, 16);
    std::string pin_text = (*it)[2];
    uint32_t pin = pin_text == "Zero" ? 0 : pin_text == "One" ? 1 : std::stoul(pin_text, nullptr, 16);
    uint32_t gsi = std::stoul((*it)[3], nullptr, 16);
    EXPECT_EQ(gsi, pf::pci_intx_gsi(slot, pin)) << "slot " << slot << " pin " << pin;
    ++routes;
  }
  EXPECT_EQ(routes, 31 * 4) << dsl;
}

TEST(Dsdt, RefusesADeviceItCannotName) {
  AcpiPlatform bad{1, {{"com1", "PNP0501", 1, {}, {}}}};
  EXPECT_THROW(build_dsdt(bad), InputError);
  AcpiPlatform bad_irq{1, {{"COM1", "PNP0501", 1, {}, {16}}}};
  EXPECT_THROW(build_dsdt(bad_irq), InputError);
}

TEST(Aml, PackageLengthsGrowWithTheirContents) {
  EXPECT_EQ(aml::buffer(aml::Bytes(10)).at(1), 10 + 2 + 1) << "one length byte: size prefix, contents";
  aml::Bytes two = aml::buffer(aml::Bytes(100));  // size as a byte integer (2), contents, 2 length bytes
  EXPECT_EQ(two.at(1) >> 6, 1);
  EXPECT_EQ(((two.at(2) << 4) | (two.at(1) & 0xf)), 2 + 100 + 2);
  aml::Bytes three = aml::buffer(aml::Bytes(5000));  // size as a word integer (3), contents, 3 length bytes
  EXPECT_EQ(three.at(1) >> 6, 2);
  EXPECT_EQ((three.at(3) << 12) | (three.at(2) << 4) | (three.at(1) & 0xf), 3 + 5000 + 3);
}

TEST(Aml, EncodesNamesIntegersAndEisaIds) {
  EXPECT_EQ(aml::name_path("_HID"), (aml::Bytes{'_', 'H', 'I', 'D'}));
  EXPECT_EQ(aml::name_path("\\_SB"), (aml::Bytes{'\\', '_', 'S', 'B', '_'}));
  EXPECT_EQ(aml::name_path("\\_SB.PCI0"), (aml::Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'}));
  EXPECT_EQ(aml::integer(0), aml::Bytes{0x00});
  EXPECT_EQ(aml::integer(0x1234), (aml::Bytes{0x0b, 0x34, 0x12}));
  EXPECT_EQ(aml::integer(0x123456789ull), (aml::Bytes{0x0e, 0x89, 0x67, 0x45, 0x23, 0x01, 0, 0, 0}));
  EXPECT_EQ(aml::eisa_id("PNP0A03"), (aml::Bytes{0x0c, 0x41, 0xd0, 0x0a, 0x03}));
  EXPECT_THROW(aml::eisa_id("pnp0a03"), std::invalid_argument);
  EXPECT_THROW(aml::name_path("TOOLONG"), std::invalid_argument);
}

}  // namespace
}  // namespace bulkhead::core
