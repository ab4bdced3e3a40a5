// Bulkhead's legacy device protocol: vhost-user's socket and fd passing, plus the messages
// and the shared access ring that let a device process implement port-I/O and MMIO
// registers, a PCI function, interrupt lines and DMA. See docs/legacy-device-protocol.md.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bulkhead::legacy {

// Requests in a range the vhost-user spec does not use. The device also takes vhost-user's
// SET_OWNER and, when it asked for guest memory, SET_MEM_TABLE.
enum class Request : uint32_t {
  kGetDeviceInfo = 1024,  // reply: DeviceInfo
  kSetIrq = 1025,         // IrqSetting + [irqfd] (edge) or [irqfd, resamplefd] (level); REPLY_ACK
  kSetAccessRing = 1026,  // AccessRingSetting + [ring memfd, kick eventfd, notify eventfd]; REPLY_ACK
  // [state memfd of DeviceInfo::state_size bytes]; REPLY_ACK. Before SET_ACCESS_RING: where the
  // device keeps the state a new process of it resumes from (crash recovery).
  kSetStatePage = 1027,
};

inline constexpr uint32_t kMaxRegions = 8;
inline constexpr size_t kKindNameSize = 16;
inline constexpr int kPciBars = 6;
// The region index that means "not backed by a register window".
inline constexpr uint8_t kNoRegion = 0xff;

enum class BarKind : uint8_t { kUnused = 0, kMemory32 = 1, kIo = 2 };

struct PciBarInfo {
  uint32_t size;   // a power of two
  uint8_t kind;    // BarKind
  uint8_t region;  // the register window the BAR decodes to
  uint16_t reserved;
};

// A PCI function served by the device: the core keeps the standard header (IDs from here,
// BARs, command, interrupt pin and line) and forwards device-specific configuration space
// (0x40-0xff) to `config_region`, plus every write of the command register, so that the
// device knows whether bus mastering and INTx are enabled.
struct PciFunctionInfo {
  uint16_t vendor, device, subsystem_vendor, subsystem;
  uint32_t class_code;     // base class << 16 | subclass << 8 | programming interface
  uint8_t revision;
  uint8_t interrupt_pin;   // 1 = INTA; 0: no INTx
  uint8_t config_region;   // kNoRegion: device-specific config space reads as zero
  // Where the core keeps an MSI capability (kMsiCapabilitySize bytes, dword-aligned, in
  // 0x40-0xff) that steers the device's INTx line to a message; 0: no MSI. The device does
  // not see accesses to those bytes.
  uint8_t msi_offset;
  PciBarInfo bars[kPciBars];
};
inline constexpr uint16_t kPciConfigCommand = 0x04;
inline constexpr uint8_t kMsiCapabilitySize = 12;
inline constexpr uint16_t kPciDeviceConfigStart = 0x40;

struct DeviceInfo {
  char kind[kKindNameSize];  // NUL-padded, e.g. "serial"
  uint32_t num_regions;      // register windows, each accessed at offsets [0, region_size)
  uint32_t num_irqs;         // interrupt lines the device drives
  uint32_t flags;
  // Bytes of state the device keeps in a page the core holds across restarts (SET_STATE_PAGE);
  // 0: its state dies with its process.
  uint32_t state_size;
  uint64_t region_size[kMaxRegions];
  PciFunctionInfo pci;  // with kDeviceHasPciFunction
};
inline constexpr uint32_t kDeviceNeedsGuestMemory = 1u << 0;  // send SET_MEM_TABLE (DMA)
inline constexpr uint32_t kDeviceHasPciFunction = 1u << 1;
// The largest state page the core makes for a device.
inline constexpr uint32_t kMaxStateSize = 1u << 20;

struct IrqSetting {
  uint32_t index;  // which of the device's lines
  uint32_t flags;  // kIrqLevel, or 0: edge-triggered, each signal is one interrupt
};
// Level-triggered (PCI INTx): the line stays asserted until the guest's EOI, when KVM
// lowers it and signals the resample eventfd; a device whose output is still high then
// signals the irqfd again.
inline constexpr uint32_t kIrqLevel = 1u << 0;

struct AccessRingSetting {
  uint32_t poll_us;  // keep polling this long after the last access before sleeping
  uint32_t reserved;
};

}  // namespace bulkhead::legacy
