// Bulkhead's legacy device protocol: vhost-user's socket and fd passing, plus the messages
// and the shared access ring that let a device process implement port-I/O and MMIO
// registers. See docs/legacy-device-protocol.md.
#pragma once

#include <cstdint>

namespace bulkhead::legacy {

// Requests in a range the vhost-user spec does not use.
enum class Request : uint32_t {
  kGetDeviceInfo = 1024,  // reply: DeviceInfo
  kSetIrq = 1025,         // IrqSetting + [irqfd]; REPLY_ACK
  kSetAccessRing = 1026,  // AccessRingSetting + [ring memfd, kick eventfd, notify eventfd]; REPLY_ACK
};

enum class DeviceKind : uint32_t {
  kSerial16550 = 1,
};

inline constexpr uint32_t kMaxRegions = 4;

struct DeviceInfo {
  uint32_t kind;         // DeviceKind
  uint32_t num_regions;  // register windows, each accessed at offsets [0, region_size)
  uint32_t num_irqs;     // interrupt lines the device drives
  uint32_t flags;        // kDeviceNeedsGuestMemory: send SET_MEM_TABLE
  uint64_t region_size[kMaxRegions];
};
inline constexpr uint32_t kDeviceNeedsGuestMemory = 1u << 0;

struct IrqSetting {
  uint32_t index;  // which of the device's lines
  uint32_t flags;  // must be 0: edge-triggered, each signal is one interrupt
};

struct AccessRingSetting {
  uint32_t poll_us;  // keep polling this long after the last access before sleeping
  uint32_t reserved;
};

}  // namespace bulkhead::legacy
