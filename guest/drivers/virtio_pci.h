// The guest's side of the virtio 1.x PCI transport (modern devices only).
#pragma once

#include <stdint.h>

#include "drivers/pci.h"
#include "drivers/virtqueue.h"

namespace guest {

class VirtioPciDriver {
 public:
  static constexpr uint16_t kVendor = 0x1af4;
  static constexpr uint64_t kFeatureIndirect = 1ull << 28, kFeatureEventIdx = 1ull << 29, kFeatureVersion1 = 1ull << 32;

  // Finds the n-th modern virtio device of `type` and maps its structures.
  bool probe(uint16_t type, int n);
  // Reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK. Returns the accepted
  // features (0 on failure).
  uint64_t negotiate(uint64_t wanted);
  uint16_t queue_count();
  // Sets up queue `index` (msix_vector 0xffff: none, the driver polls) and enables it.
  bool setup_queue(uint16_t index, Virtqueue& vq, uint16_t size, uint16_t msix_vector = 0xffff);
  // Notifies the device of new buffers on `vq` unless it asked not to be (EVENT_IDX/NO_NOTIFY).
  void kick(uint16_t index, Virtqueue& vq) {
    if (vq.kick_needed()) notify(index);
  }
  void driver_ok();
  uint8_t status();
  void notify(uint16_t index);
  volatile uint8_t* device_config() const { return device_; }
  // Points MSI-X vector `vector` at `cpu_vector` on the BSP and enables MSI-X.
  bool enable_msix(uint16_t vector, uint8_t cpu_vector);
  // MSI-X table entry `vector` (after enable_msix): mask it, point it elsewhere, and read
  // its pending bit.
  void msix_mask(uint16_t vector, bool masked);
  void msix_retarget(uint16_t vector, uint8_t cpu_vector);
  bool msix_pending(uint16_t vector);
  const PciFunction& function() const { return fn_; }

 private:
  volatile uint8_t* map(uint8_t cap);
  PciFunction fn_{};
  volatile uint8_t* common_ = nullptr;
  volatile uint8_t* device_ = nullptr;
  volatile uint8_t* notify_base_ = nullptr;
  uint32_t notify_multiplier_ = 0;
  uint64_t features_ = 0;
  volatile uint32_t* msix_table_ = nullptr;
  volatile uint32_t* msix_pba_ = nullptr;
  static constexpr int kMaxQueues = 16;
  volatile uint16_t* notify_[kMaxQueues] = {};  // cached: a notify is one MMIO write
};

}  // namespace guest
