// The PC the core presents to a guest, in one place: the addresses and interrupt lines that
// the ACPI tables describe and that the core's own devices decode. A guest learns all of it
// from ACPI; nothing here may change without the tables changing with it.
#pragma once

#include <cstdint>

namespace bulkhead::core::platform {

// Interrupt controllers: the in-kernel 8259 pair, IOAPIC and local APICs.
inline constexpr uint64_t kIoapicAddress = 0xfec00000;
inline constexpr uint64_t kLocalApicAddress = 0xfee00000;
inline constexpr uint32_t kIoapicPins = 24;

// KVM's private pages for VMX real-mode support: reserved in the memory map.
inline constexpr uint64_t kKvmIdentityMapAddr = 0xfeffc000;
inline constexpr uint64_t kKvmTssAddr = 0xfeffd000;
inline constexpr uint64_t kKvmPrivateSize = 0x4000;

// ACPI fixed hardware (full, not hardware-reduced, ACPI: see boot/acpi.cc): the PM1a event
// block (status, enable), the PM1a control block and the 32-bit PM timer, and the SCI.
inline constexpr uint16_t kPmBase = 0x600;
inline constexpr uint16_t kPmSize = 0x10;
inline constexpr uint16_t kPm1EventBlock = kPmBase, kPm1ControlBlock = kPmBase + 4, kPmTimerBlock = kPmBase + 8;
inline constexpr uint32_t kSciIrq = 9;  // ISA IRQ and GSI: level-triggered, active high
inline constexpr uint8_t kSleepTypeS5 = 5;
inline constexpr uint16_t kResetControlPort = 0xcf9;
inline constexpr uint8_t kResetValue = 0x06;

// Other fixed ports the core decodes (reserved in the DSDT's motherboard resources).
inline constexpr uint16_t kDebugExitPort = 0xf4;  // where QEMU's isa-debug-exit usually sits
inline constexpr uint16_t kDebugExitPorts = 4;
inline constexpr uint16_t kKeyboardControllerPort = 0x64;

// PCI bus 0: configuration mechanism 1, and the windows the core places BARs in (the
// 32-bit hole below the IOAPIC, and I/O ports from 0xc000 as PC firmware does).
inline constexpr uint16_t kPciConfigPort = 0xcf8;
inline constexpr uint16_t kPciConfigPorts = 8;
inline constexpr uint64_t kPciMmioStart = 0xc0000000, kPciMmioEnd = kIoapicAddress;
inline constexpr uint32_t kPciIoStart = 0xc000, kPciIoEnd = 0x10000;
inline constexpr uint32_t kPciSlots = 32;

// PCI INTx: IOAPIC pins 16-23, fixed per slot and pin (INTA = 0) by the usual swizzle. The
// DSDT's _PRT says the same; a guest-writable register never decides it.
inline constexpr uint32_t kFirstPciGsi = 16, kPciGsis = 8;
constexpr uint32_t pci_intx_gsi(uint32_t slot, uint32_t pin) { return kFirstPciGsi + (slot + pin) % kPciGsis; }

}  // namespace bulkhead::core::platform
