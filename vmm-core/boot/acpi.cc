#include "vmm-core/boot/acpi.h"

#include <cstring>
#include <stdexcept>

#include "common/error.h"
#include "vmm-core/boot/aml.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/platform.h"

namespace bulkhead::core {

// Full ACPI with the legacy PC interrupt model, not hardware-reduced ACPI: ata_piix in
// compatibility mode and other ISA-era drivers ask for IRQs 14/15 (and 4, 9...) by number,
// which a hardware-reduced Linux cannot give them (it runs with a null 8259 and allocates no
// legacy IRQ descriptors). So the FADT has the PM1 blocks, a PM timer and an SCI, the MADT
// says PCAT_COMPAT with the SCI's ISA override, and the 8259s and the IOAPIC both exist (the
// in-kernel irqchip provides them).

namespace {

namespace pf = platform;

constexpr uint32_t kFadtLength = 276;  // revision 6
constexpr uint32_t kFacsLength = 64;
constexpr uint32_t kFadtWbinvd = 1u << 0, kFadtProcC1 = 1u << 2, kFadtSleepButton = 1u << 5,
                   kFadtTmrValExt = 1u << 8, kFadtResetRegSupported = 1u << 10;
constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasByteAccess = 1, kGasWordAccess = 2, kGasDWordAccess = 3;
constexpr uint16_t kBootArchVgaNotPresent = 1u << 2;
constexpr uint16_t kBootArchCmosRtcNotPresent = 1u << 5;
constexpr uint32_t kMadtPcatCompat = 1u << 0;
constexpr uint16_t kMpsLevelActiveHigh = 0x000d;  // polarity 01 (high), trigger 11 (level)

// A table under construction: little-endian appends, then a header and checksum.
class Table {
 public:
  explicit Table(size_t size = 0) : bytes_(size) {}
  template <typename T>
  void put(size_t offset, T value) {
    if (offset + sizeof value > bytes_.size()) bytes_.resize(offset + sizeof value);
    std::memcpy(&bytes_[offset], &value, sizeof value);
  }
  template <typename T>
  void append(T value) {
    put(bytes_.size(), value);
  }
  void append_bytes(const std::vector<uint8_t>& more) { bytes_.insert(bytes_.end(), more.begin(), more.end()); }
  void put_chars(size_t offset, const char* s, size_t n) {
    if (offset + n > bytes_.size()) bytes_.resize(offset + n);
    std::memcpy(&bytes_[offset], s, n);
  }
  // Standard 36-byte system description header; call after the body is complete.
  void finish_sdt(const char signature[4], uint8_t revision) {
    put_chars(0, signature, 4);
    put<uint32_t>(4, static_cast<uint32_t>(bytes_.size()));
    put<uint8_t>(8, revision);
    put_chars(10, "BLKHD ", 6);
    put_chars(16, "BULKHEAD", 8);
    put<uint32_t>(24, 1);
    put_chars(28, "BLKH", 4);
    put<uint32_t>(32, 1);
    checksum(9, bytes_.size());
  }
  // Sets bytes_[at] so that bytes [0, length) sum to zero.
  void checksum(size_t at, size_t length) {
    bytes_[at] = 0;
    uint8_t sum = 0;
    for (size_t i = 0; i < length; ++i) sum += bytes_[i];
    bytes_[at] = static_cast<uint8_t>(-sum);
  }
  size_t size() const { return bytes_.size(); }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// Places tables one after another in the ACPI area, each aligned to 64 bytes.
class AcpiArea {
 public:
  explicit AcpiArea(const GuestMemory& memory) : memory_(memory) {}
  uint64_t place(const Table& table) {
    uint64_t at = next_;
    next_ = (next_ + table.size() + 63) & ~63ull;
    if (next_ > kAcpiTablesAddr + kAcpiTablesSize) throw InputError("the ACPI tables do not fit their area");
    memory_.write(at, table.bytes(), "ACPI table");
    return at;
  }

 private:
  const GuestMemory& memory_;
  uint64_t next_ = kAcpiTablesAddr;
};

// The PCI host bridge: bus 0, the configuration ports, I/O around them, the 32-bit MMIO
// hole, and INTx routed straight to IOAPIC pins (no interrupt link devices).
aml::Bytes pci_host_bridge() {
  aml::Bytes crs = aml::ResourceTemplate()
                       .bus_numbers(0, 0)
                       .io(pf::kPciConfigPort, pf::kPciConfigPorts)
                       .io_window(0x0000, pf::kPciConfigPort - 1)
                       .io_window(pf::kPciConfigPort + pf::kPciConfigPorts, 0xffff)
                       .memory_window(static_cast<uint32_t>(pf::kPciMmioStart), static_cast<uint32_t>(pf::kPciMmioEnd - 1))
                       .build();
  std::vector<aml::Bytes> routes;
  for (uint32_t slot = 1; slot < pf::kPciSlots; ++slot)
    for (uint32_t pin = 0; pin < 4; ++pin)
      routes.push_back(aml::package({aml::integer((slot << 16) | 0xffff), aml::integer(pin), aml::integer(0),
                                     aml::integer(pf::pci_intx_gsi(slot, pin))}));
  return aml::device("PCI0", {aml::name("_HID", aml::eisa_id("PNP0A03")), aml::name("_ADR", aml::integer(0)),
                              aml::name("_UID", aml::integer(0)), aml::name("_BBN", aml::integer(0)),
                              aml::name("_CRS", crs), aml::name("_PRT", aml::package(routes))});
}

// Ports the core itself decodes, so that no guest places a device over them.
aml::Bytes motherboard_resources() {
  aml::Bytes crs = aml::ResourceTemplate()
                       .io(pf::kPmBase, pf::kPmSize)
                       .io(pf::kDebugExitPort, pf::kDebugExitPorts)
                       .io(pf::kKeyboardControllerPort, 1)
                       .build();
  return aml::device("SYSR", {aml::name("_HID", aml::eisa_id("PNP0C02")), aml::name("_UID", aml::integer(1)),
                              aml::name("_CRS", crs)});
}

aml::Bytes isa_device(const AcpiIsaDevice& d) {
  aml::ResourceTemplate crs;
  for (const AcpiIsaDevice::Ports& p : d.ports) crs.io(p.base, p.length);
  for (uint8_t irq : d.irqs) crs.irq({irq});
  return aml::device(d.name, {aml::name("_HID", aml::eisa_id(d.hid)), aml::name("_UID", aml::integer(d.uid)),
                              aml::name("_CRS", crs.build())});
}

void put_gas(Table& t, size_t offset, uint16_t port, uint8_t bits, uint8_t access) {
  t.put<uint8_t>(offset, kGasSystemIo);
  t.put<uint8_t>(offset + 1, bits);
  t.put<uint8_t>(offset + 2, 0);
  t.put<uint8_t>(offset + 3, access);
  t.put<uint64_t>(offset + 4, port);
}

Table fadt(uint64_t facs, uint64_t dsdt) {
  Table t(kFadtLength);
  t.put<uint32_t>(36, static_cast<uint32_t>(facs));  // X_FIRMWARE_CTRL stays 0, as the spec wants then
  t.put<uint32_t>(40, static_cast<uint32_t>(dsdt));
  t.put<uint16_t>(46, pf::kSciIrq);  // SMI_CMD stays 0: always in ACPI mode
  t.put<uint32_t>(56, pf::kPm1EventBlock);
  t.put<uint32_t>(64, pf::kPm1ControlBlock);
  t.put<uint32_t>(76, pf::kPmTimerBlock);
  t.put<uint8_t>(88, 4);  // PM1_EVT_LEN: status and enable, 16 bits each
  t.put<uint8_t>(89, 2);  // PM1_CNT_LEN
  t.put<uint8_t>(91, 4);  // PM_TMR_LEN
  t.put<uint16_t>(96, 101);   // P_LVL2_LAT > 100: no C2
  t.put<uint16_t>(98, 1001);  // P_LVL3_LAT > 1000: no C3
  t.put<uint16_t>(109, kBootArchVgaNotPresent | kBootArchCmosRtcNotPresent);
  // The power button is the fixed-feature one (PWR_BUTTON clear); there is no sleep button.
  t.put<uint32_t>(112, kFadtWbinvd | kFadtProcC1 | kFadtSleepButton | kFadtTmrValExt | kFadtResetRegSupported);
  put_gas(t, 116, pf::kResetControlPort, 8, kGasByteAccess);  // RESET_REG
  t.put<uint8_t>(128, pf::kResetValue);
  t.put<uint8_t>(131, 3);  // FADT minor version: 6.3
  t.put<uint64_t>(140, dsdt);
  put_gas(t, 148, pf::kPm1EventBlock, 32, kGasWordAccess);
  put_gas(t, 172, pf::kPm1ControlBlock, 16, kGasWordAccess);
  put_gas(t, 208, pf::kPmTimerBlock, 32, kGasDWordAccess);
  t.put_chars(268, "BULKHEAD", 8);  // hypervisor vendor identity
  t.finish_sdt("FACP", 6);
  return t;
}

Table facs() {
  Table t(kFacsLength);
  t.put_chars(0, "FACS", 4);
  t.put<uint32_t>(4, kFacsLength);
  t.put<uint8_t>(32, 2);  // version
  return t;               // no checksum: the FACS has none
}

Table madt(uint32_t cpus) {
  Table t(44);
  t.put<uint32_t>(36, static_cast<uint32_t>(pf::kLocalApicAddress));
  t.put<uint32_t>(40, kMadtPcatCompat);
  for (uint32_t cpu = 0; cpu < cpus; ++cpu) {
    t.append<uint8_t>(0);  // processor local APIC
    t.append<uint8_t>(8);
    t.append<uint8_t>(static_cast<uint8_t>(cpu));  // ACPI processor UID
    t.append<uint8_t>(static_cast<uint8_t>(cpu));  // APIC ID = vCPU index
    t.append<uint32_t>(1);                         // enabled
  }
  t.append<uint8_t>(1);  // I/O APIC
  t.append<uint8_t>(12);
  t.append<uint8_t>(0);  // IOAPIC ID
  t.append<uint8_t>(0);
  t.append<uint32_t>(static_cast<uint32_t>(pf::kIoapicAddress));
  t.append<uint32_t>(0);  // GSI base
  t.append<uint8_t>(2);   // interrupt source override: the SCI is level-triggered, active high
  t.append<uint8_t>(10);
  t.append<uint8_t>(0);  // ISA bus
  t.append<uint8_t>(static_cast<uint8_t>(pf::kSciIrq));
  t.append<uint32_t>(pf::kSciIrq);
  t.append<uint16_t>(kMpsLevelActiveHigh);
  t.append<uint8_t>(4);  // local APIC NMI on LINT1 of every processor
  t.append<uint8_t>(6);
  t.append<uint8_t>(0xff);
  t.append<uint16_t>(0);
  t.append<uint8_t>(1);
  t.finish_sdt("APIC", 5);
  return t;
}

}  // namespace

std::vector<uint8_t> build_dsdt(const AcpiPlatform& platform) {
  std::vector<aml::Bytes> system_bus = {pci_host_bridge(), motherboard_resources()};
  try {
    for (const AcpiIsaDevice& d : platform.isa_devices) system_bus.push_back(isa_device(d));
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("a device cannot be described in ACPI: ") + e.what());
  }
  Table dsdt(36);
  dsdt.append_bytes(aml::name("\\_S5", aml::package({aml::integer(pf::kSleepTypeS5), aml::integer(0),
                                                      aml::integer(0), aml::integer(0)})));
  dsdt.append_bytes(aml::scope("\\_SB", system_bus));
  dsdt.finish_sdt("DSDT", 2);
  return dsdt.bytes();
}

uint64_t write_acpi_tables(const GuestMemory& memory, const AcpiPlatform& platform) {
  AcpiArea area(memory);
  // The RSDP comes first: guests look for it on 16-byte boundaries of the BIOS area.
  constexpr uint64_t kRsdp = kAcpiTablesAddr;
  Table rsdp(36);
  area.place(rsdp);  // reserves its place; written again once the XSDT's address is known
  Table dsdt_table;
  dsdt_table.append_bytes(build_dsdt(platform));
  uint64_t dsdt = area.place(dsdt_table);
  uint64_t facs_at = area.place(facs());
  uint64_t fadt_at = area.place(fadt(facs_at, dsdt));
  uint64_t madt_at = area.place(madt(platform.cpus));

  Table xsdt(36);
  xsdt.append<uint64_t>(fadt_at);
  xsdt.append<uint64_t>(madt_at);
  xsdt.finish_sdt("XSDT", 1);
  uint64_t xsdt_at = area.place(xsdt);
  Table rsdt(36);
  rsdt.append<uint32_t>(static_cast<uint32_t>(fadt_at));
  rsdt.append<uint32_t>(static_cast<uint32_t>(madt_at));
  rsdt.finish_sdt("RSDT", 1);
  uint64_t rsdt_at = area.place(rsdt);

  rsdp.put_chars(0, "RSD PTR ", 8);
  rsdp.put_chars(9, "BLKHD ", 6);
  rsdp.put<uint8_t>(15, 2);
  rsdp.put<uint32_t>(16, static_cast<uint32_t>(rsdt_at));
  rsdp.put<uint32_t>(20, 36);
  rsdp.put<uint64_t>(24, xsdt_at);
  rsdp.checksum(8, 20);
  rsdp.checksum(32, 36);
  memory.write(kRsdp, rsdp.bytes(), "ACPI RSDP");
  return kRsdp;
}

}  // namespace bulkhead::core
