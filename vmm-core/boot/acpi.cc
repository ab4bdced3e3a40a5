#include "vmm-core/boot/acpi.h"

#include <cstring>
#include <vector>

#include "common/error.h"
#include "vmm-core/boot/layout.h"

namespace bulkhead::core {

namespace {

constexpr uint64_t kRsdpAddr = kAcpiTablesAddr;
constexpr uint64_t kXsdtAddr = kAcpiTablesAddr + 0x40;
constexpr uint64_t kRsdtAddr = kAcpiTablesAddr + 0x80;
constexpr uint64_t kFadtAddr = kAcpiTablesAddr + 0x100;
constexpr uint64_t kDsdtAddr = kAcpiTablesAddr + 0x300;
constexpr uint64_t kMadtAddr = kAcpiTablesAddr + 0x400;

constexpr uint32_t kFadtLength = 276;        // revision 6
constexpr uint32_t kFadtHwReducedAcpi = 1u << 20;
constexpr uint32_t kFadtResetRegSupported = 1u << 10;
constexpr uint8_t kGasSystemIo = 1;
constexpr uint8_t kGasByteAccess = 1;
constexpr uint16_t kBootArchVgaNotPresent = 1u << 2;
constexpr uint16_t kBootArchCmosRtcNotPresent = 1u << 5;
constexpr uint32_t kMadtPcatCompat = 1u << 0;

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
  void write_to(const GuestMemory& memory, uint64_t address) const {
    if (address + bytes_.size() > kAcpiTablesAddr + kAcpiTablesSize) throw InputError("ACPI tables do not fit");
    memory.write(address, bytes_, "ACPI table");
  }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace

uint64_t write_acpi_tables(const GuestMemory& memory, uint32_t cpus) {
  // DSDT: just \_S5, so the guest knows the sleep type that powers off.
  // AML: Name (_S5, Package (4) { 5, 0, 0, 0 })
  Table dsdt(36);
  static constexpr uint8_t kS5Aml[] = {0x08, '_', 'S', '5', '_', 0x12, 0x07, 0x04, 0x0a, kSleepTypeS5, 0, 0, 0};
  for (uint8_t b : kS5Aml) dsdt.append<uint8_t>(b);
  dsdt.finish_sdt("DSDT", 2);
  dsdt.write_to(memory, kDsdtAddr);

  Table fadt(kFadtLength);
  fadt.put<uint32_t>(40, static_cast<uint32_t>(kDsdtAddr));
  fadt.put<uint16_t>(109, kBootArchVgaNotPresent | kBootArchCmosRtcNotPresent);
  fadt.put<uint32_t>(112, kFadtHwReducedAcpi | kFadtResetRegSupported);
  auto put_io_register = [&](size_t offset, uint16_t port) {  // Generic Address Structure
    fadt.put<uint8_t>(offset, kGasSystemIo);
    fadt.put<uint8_t>(offset + 1, 8);  // bit width
    fadt.put<uint8_t>(offset + 3, kGasByteAccess);
    fadt.put<uint64_t>(offset + 4, port);
  };
  put_io_register(116, kResetControlPort);  // RESET_REG
  fadt.put<uint8_t>(128, kResetValue);
  put_io_register(244, kSleepControlPort);      // SLEEP_CONTROL_REG
  put_io_register(256, kSleepControlPort + 1);  // SLEEP_STATUS_REG
  fadt.put<uint8_t>(131, 3);  // FADT minor version: 6.3
  fadt.put<uint64_t>(140, kDsdtAddr);
  fadt.put_chars(268, "BULKHEAD", 8);  // hypervisor vendor identity
  fadt.finish_sdt("FACP", 6);
  fadt.write_to(memory, kFadtAddr);

  Table madt(44);
  madt.put<uint32_t>(36, static_cast<uint32_t>(kLocalApicAddress));
  madt.put<uint32_t>(40, kMadtPcatCompat);
  for (uint32_t cpu = 0; cpu < cpus; ++cpu) {
    madt.append<uint8_t>(0);  // processor local APIC
    madt.append<uint8_t>(8);
    madt.append<uint8_t>(static_cast<uint8_t>(cpu));  // ACPI processor UID
    madt.append<uint8_t>(static_cast<uint8_t>(cpu));  // APIC ID
    madt.append<uint32_t>(1);                         // enabled
  }
  madt.append<uint8_t>(1);  // I/O APIC
  madt.append<uint8_t>(12);
  madt.append<uint8_t>(0);  // IOAPIC ID
  madt.append<uint8_t>(0);
  madt.append<uint32_t>(static_cast<uint32_t>(kIoapicAddress));
  madt.append<uint32_t>(0);  // GSI base
  madt.append<uint8_t>(4);   // local APIC NMI
  madt.append<uint8_t>(6);
  madt.append<uint8_t>(0xff);  // all processors
  madt.append<uint16_t>(0);
  madt.append<uint8_t>(1);  // LINT1
  madt.finish_sdt("APIC", 5);
  madt.write_to(memory, kMadtAddr);

  Table xsdt(36);
  xsdt.append<uint64_t>(kFadtAddr);
  xsdt.append<uint64_t>(kMadtAddr);
  xsdt.finish_sdt("XSDT", 1);
  xsdt.write_to(memory, kXsdtAddr);

  Table rsdt(36);
  rsdt.append<uint32_t>(static_cast<uint32_t>(kFadtAddr));
  rsdt.append<uint32_t>(static_cast<uint32_t>(kMadtAddr));
  rsdt.finish_sdt("RSDT", 1);
  rsdt.write_to(memory, kRsdtAddr);

  Table rsdp(36);
  rsdp.put_chars(0, "RSD PTR ", 8);
  rsdp.put_chars(9, "BLKHD ", 6);
  rsdp.put<uint8_t>(15, 2);
  rsdp.put<uint32_t>(16, static_cast<uint32_t>(kRsdtAddr));
  rsdp.put<uint32_t>(20, 36);
  rsdp.put<uint64_t>(24, kXsdtAddr);
  rsdp.checksum(8, 20);
  rsdp.checksum(32, 36);
  rsdp.write_to(memory, kRsdpAddr);
  return kRsdpAddr;
}

}  // namespace bulkhead::core
