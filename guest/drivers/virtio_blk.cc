#include "drivers/virtio_blk.h"

#include "arch.h"
#include "dma.h"

namespace guest {

bool VirtioBlkDriver::init(int n) {
  if (!pci_.probe(kType, n)) return false;
  uint64_t features =
      pci_.negotiate(VirtioPciDriver::kFeatureVersion1 | VirtioPciDriver::kFeatureIndirect | VirtioPciDriver::kFeatureEventIdx);
  if (!features) return false;
  indirect_ = features & VirtioPciDriver::kFeatureIndirect;
  if (!pci_.setup_queue(0, vq_, 128)) return false;
  headers_ = static_cast<Header*>(dma_alloc(sizeof(Header) * vq_.size(), 16));
  statuses_ = static_cast<uint8_t*>(dma_alloc(vq_.size(), 1));
  pci_.driver_ok();
  return true;
}

uint64_t VirtioBlkDriver::capacity_sectors() {
  volatile uint8_t* c = pci_.device_config();
  uint32_t lo = *reinterpret_cast<volatile uint32_t*>(c), hi = *reinterpret_cast<volatile uint32_t*>(c + 4);
  return static_cast<uint64_t>(hi) << 32 | lo;
}

bool VirtioBlkDriver::submit(uint32_t type, uint64_t sector, void* buffer, uint32_t length, uint16_t slot) {
  headers_[slot] = {type, 0, sector};
  statuses_[slot] = 0xff;
  Segment segs[3];
  int n = 0;
  segs[n++] = {&headers_[slot], sizeof(Header), false};
  if (length) segs[n++] = {buffer, length, type == kIn};
  segs[n++] = {&statuses_[slot], 1, true};
  if (!vq_.add(segs, n, slot, indirect_)) return false;
  pci_.kick(0, vq_);
  return true;
}

bool VirtioBlkDriver::reap(uint16_t* slot, uint8_t* status) {
  uint64_t token;
  uint32_t written;
  if (!vq_.pop(&token, &written)) return false;
  *slot = static_cast<uint16_t>(token);
  *status = statuses_[*slot];
  return true;
}

uint8_t VirtioBlkDriver::request(uint32_t type, uint64_t sector, void* buffer, uint32_t length) {
  if (!submit(type, sector, buffer, length, 0)) return kIoError;
  uint16_t slot;
  uint8_t status;
  while (!reap(&slot, &status)) pause();
  return status;
}

}  // namespace guest
