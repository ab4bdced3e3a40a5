// A virtio-blk driver (polling), for third-party back-ends such as qemu-storage-daemon.
#pragma once

#include <stdint.h>

#include "drivers/virtio_pci.h"

namespace guest {

class VirtioBlkDriver {
 public:
  static constexpr uint16_t kType = 2;
  static constexpr uint32_t kIn = 0, kOut = 1, kFlush = 4;
  static constexpr uint8_t kOk = 0, kIoError = 1, kUnsupported = 2;

  bool init(int n = 0);
  uint64_t capacity_sectors();
  // Synchronous request; returns the status byte.
  uint8_t request(uint32_t type, uint64_t sector, void* buffer, uint32_t length);
  // Asynchronous: submit (false if the ring is full) and reap.
  bool submit(uint32_t type, uint64_t sector, void* buffer, uint32_t length, uint16_t slot);
  bool reap(uint16_t* slot, uint8_t* status);
  uint16_t depth() const { return vq_.size(); }

 private:
  struct Header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
  };
  VirtioPciDriver pci_;
  Virtqueue vq_;
  Header* headers_ = nullptr;
  uint8_t* statuses_ = nullptr;
  bool indirect_ = false;
};

}  // namespace guest
