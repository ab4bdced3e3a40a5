#include "drivers/virtio_pci.h"

#include "arch.h"

namespace guest {

namespace {
constexpr uint8_t kCapVendor = 0x09, kCapMsix = 0x11;
constexpr uint8_t kCommon = 1, kNotify = 2, kDevice = 4;
constexpr uint8_t kAcknowledge = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8;

template <typename T>
T rd(volatile uint8_t* base, uint32_t off) {
  return *reinterpret_cast<volatile T*>(base + off);
}
template <typename T>
void wr(volatile uint8_t* base, uint32_t off, T v) {
  *reinterpret_cast<volatile T*>(base + off) = v;
}
}  // namespace

volatile uint8_t* VirtioPciDriver::map(uint8_t cap) {
  uint8_t bar = pci_read8(fn_, static_cast<uint8_t>(cap + 4));
  uint32_t offset = pci_read32(fn_, static_cast<uint8_t>(cap + 8));
  uint64_t base = pci_bar(fn_, bar);
  return base ? reinterpret_cast<volatile uint8_t*>(base + offset) : nullptr;
}

// Transitional device IDs (virtio 1.x, 4.1.2.1), which also offer the modern interface.
uint16_t transitional_id(uint16_t type) {
  switch (type) {
    case 1: return 0x1000;
    case 2: return 0x1001;
    case 5: return 0x1002;
    case 8: return 0x1004;
    default: return 0;
  }
}

bool VirtioPciDriver::probe(uint16_t type, int n) {
  if (!pci_find(kVendor, static_cast<uint16_t>(0x1040 + type), n, &fn_) &&
      !(transitional_id(type) && pci_find(kVendor, transitional_id(type), n, &fn_)))
    return false;
  pci_enable(fn_);
  for (uint8_t cap = pci_capability(fn_, kCapVendor); cap; cap = pci_capability(fn_, kCapVendor, cap)) {
    uint8_t kind = pci_read8(fn_, static_cast<uint8_t>(cap + 3));
    if (kind == kCommon && !common_) common_ = map(cap);
    if (kind == kDevice && !device_) device_ = map(cap);
    if (kind == kNotify && !notify_base_) {
      notify_base_ = map(cap);
      notify_multiplier_ = pci_read32(fn_, static_cast<uint8_t>(cap + 16));
    }
  }
  return common_ && notify_base_;
}

uint8_t VirtioPciDriver::status() { return rd<uint8_t>(common_, 0x14); }

uint64_t VirtioPciDriver::negotiate(uint64_t wanted) {
  wr<uint8_t>(common_, 0x14, 0);
  while (status() != 0) pause();
  wr<uint8_t>(common_, 0x14, kAcknowledge);
  wr<uint8_t>(common_, 0x14, kAcknowledge | kDriver);
  uint64_t offered = 0;
  for (uint32_t half = 0; half < 2; ++half) {
    wr<uint32_t>(common_, 0x00, half);
    offered |= static_cast<uint64_t>(rd<uint32_t>(common_, 0x04)) << (32 * half);
  }
  uint64_t accepted = offered & wanted;
  for (uint32_t half = 0; half < 2; ++half) {
    wr<uint32_t>(common_, 0x08, half);
    wr<uint32_t>(common_, 0x0c, static_cast<uint32_t>(accepted >> (32 * half)));
  }
  wr<uint8_t>(common_, 0x14, kAcknowledge | kDriver | kFeaturesOk);
  if (!(status() & kFeaturesOk)) return 0;
  features_ = accepted;
  return accepted;
}

uint16_t VirtioPciDriver::queue_count() { return rd<uint16_t>(common_, 0x12); }

bool VirtioPciDriver::setup_queue(uint16_t index, Virtqueue& vq, uint16_t size, uint16_t msix_vector) {
  wr<uint16_t>(common_, 0x16, index);
  uint16_t max = rd<uint16_t>(common_, 0x18);
  if (max == 0 || rd<uint16_t>(common_, 0x1c) != 0) return false;
  if (size > max) size = max;
  vq.init(size, true);
  vq.configure(features_ & kFeatureEventIdx, msix_vector != 0xffff);
  wr<uint16_t>(common_, 0x18, size);
  wr<uint32_t>(common_, 0x20, static_cast<uint32_t>(vq.desc_addr()));
  wr<uint32_t>(common_, 0x24, static_cast<uint32_t>(vq.desc_addr() >> 32));
  wr<uint32_t>(common_, 0x28, static_cast<uint32_t>(vq.avail_addr()));
  wr<uint32_t>(common_, 0x2c, static_cast<uint32_t>(vq.avail_addr() >> 32));
  wr<uint32_t>(common_, 0x30, static_cast<uint32_t>(vq.used_addr()));
  wr<uint32_t>(common_, 0x34, static_cast<uint32_t>(vq.used_addr() >> 32));
  wr<uint16_t>(common_, 0x1a, msix_vector);
  if (rd<uint16_t>(common_, 0x1a) != msix_vector) return false;
  if (index < kMaxQueues)
    notify_[index] = reinterpret_cast<volatile uint16_t*>(notify_base_ + rd<uint16_t>(common_, 0x1e) * notify_multiplier_);
  wr<uint16_t>(common_, 0x1c, 1);
  return true;
}

void VirtioPciDriver::driver_ok() { wr<uint8_t>(common_, 0x14, static_cast<uint8_t>(status() | kDriverOk)); }

void VirtioPciDriver::notify(uint16_t index) {
  if (index < kMaxQueues && notify_[index]) *notify_[index] = index;
}

bool VirtioPciDriver::enable_msix(uint16_t vector, uint8_t cpu_vector) {
  uint8_t cap = pci_capability(fn_, kCapMsix);
  if (!cap) return false;
  uint32_t table = pci_read32(fn_, static_cast<uint8_t>(cap + 4));
  uint32_t pba = pci_read32(fn_, static_cast<uint8_t>(cap + 8));
  msix_table_ = reinterpret_cast<volatile uint32_t*>(pci_bar(fn_, table & 7) + (table & ~7u));
  msix_pba_ = reinterpret_cast<volatile uint32_t*>(pci_bar(fn_, pba & 7) + (pba & ~7u));
  volatile uint32_t* entry = msix_table_ + 4 * vector;
  entry[0] = 0xfee00000u | (apic_id() << 12);  // to this CPU, physical destination
  entry[1] = 0;
  entry[2] = cpu_vector;  // fixed delivery, edge
  entry[3] = 0;           // unmask
  uint16_t control = pci_read16(fn_, static_cast<uint8_t>(cap + 2));
  pci_write16(fn_, static_cast<uint8_t>(cap + 2), static_cast<uint16_t>((control | 0x8000) & ~0x4000));
  return true;
}

void VirtioPciDriver::msix_mask(uint16_t vector, bool masked) { msix_table_[4 * vector + 3] = masked ? 1 : 0; }

void VirtioPciDriver::msix_retarget(uint16_t vector, uint8_t cpu_vector) { msix_table_[4 * vector + 2] = cpu_vector; }

bool VirtioPciDriver::msix_pending(uint16_t vector) { return (msix_pba_[vector / 32] >> (vector % 32)) & 1; }

}  // namespace guest
