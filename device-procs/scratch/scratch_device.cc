#include "device-procs/scratch/scratch_device.h"

#include <cstring>
#include <vector>

namespace bulkhead::device {

namespace {
constexpr uint32_t kDone = 1, kOutsideRam = 2, kBusMasterOff = 4;
constexpr uint16_t kCommandBusMaster = 1u << 2;

void set_half(uint64_t& field, bool high, uint64_t value) {
  field = high ? (field & 0xffffffffull) | (value << 32) : (field & ~0xffffffffull) | (value & 0xffffffffull);
}
}  // namespace

legacy::DeviceInfo ScratchDevice::info() const {
  legacy::DeviceInfo info{};
  std::strncpy(info.kind, kKind, sizeof info.kind);
  info.num_regions = 4;
  info.num_irqs = 2;  // 0: PCI INTx, 1: an ISA line
  info.flags = legacy::kDeviceNeedsGuestMemory | legacy::kDeviceHasPciFunction;
  info.region_size[kRegisters] = 4096;
  info.region_size[kFifo] = 16;
  info.region_size[kPort] = 4;
  info.region_size[kConfig] = 256;
  info.pci.vendor = 0x1b36;  // a test device: QEMU's vendor ID, a device ID nothing else uses
  info.pci.device = 0x00ff;
  info.pci.subsystem_vendor = 0x1b36;
  info.pci.subsystem = 0x00ff;
  info.pci.class_code = 0xff0000;
  info.pci.interrupt_pin = 1;
  info.pci.config_region = kConfig;
  info.pci.msi_offset = 0xc0;  // the core's MSI capability; this device's config space is 0x40
  info.pci.bars[0] = {4096, static_cast<uint8_t>(legacy::BarKind::kMemory32), kRegisters, 0};
  info.pci.bars[1] = {16, static_cast<uint8_t>(legacy::BarKind::kIo), kFifo, 0};
  return info;
}

uint64_t ScratchDevice::read(uint8_t region, uint64_t offset, uint8_t size) {
  switch (region) {
    case kRegisters:
      if (size != 4) return ~0ull;
      switch (offset) {
        case 0x00: return kMagic;
        case 0x04: return scratch_;
        case 0x08: return static_cast<uint32_t>(dma_source_);
        case 0x0c: return static_cast<uint32_t>(dma_source_ >> 32);
        case 0x10: return static_cast<uint32_t>(dma_destination_);
        case 0x14: return static_cast<uint32_t>(dma_destination_ >> 32);
        case 0x18: return dma_length_;
        case 0x20: return dma_status_;
        case 0x24: return intx_.level();
        case 0x2c: return config_scratch_;
        case 0x30: return command_;
        default: return 0;
      }
    case kFifo: {
      if (offset == 4) return fifo_.size();
      if (offset != 0) return ~0ull;
      uint64_t v = 0;
      for (uint8_t i = 0; i < size; ++i) {
        uint64_t byte = 0xff;
        if (!fifo_.empty()) {
          byte = fifo_.front();
          fifo_.pop_front();
        }
        v |= byte << (8 * i);
      }
      return v;
    }
    case kPort:
      return offset == 0 && size == 4 ? port_scratch_ : ~0ull;
    case kConfig:
      return offset == 0x40 && size == 4 ? config_scratch_ : 0;
  }
  return ~0ull;
}

void ScratchDevice::write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) {
  switch (region) {
    case kRegisters:
      if (size != 4) return;
      switch (offset) {
        case 0x04: scratch_ = static_cast<uint32_t>(value); break;
        case 0x08: case 0x0c: set_half(dma_source_, offset == 0x0c, value); break;
        case 0x10: case 0x14: set_half(dma_destination_, offset == 0x14, value); break;
        case 0x18: dma_length_ = static_cast<uint32_t>(value); break;
        case 0x1c: if (value == 1) dma_status_ = dma(); break;
        case 0x24: intx_.set_level(value & 1); break;
        case 0x28: isa_.set_level(true); isa_.set_level(false); break;
        default: break;
      }
      return;
    case kFifo:
      if (offset == 8) fifo_.clear();
      if (offset != 0) return;
      for (uint8_t i = 0; i < size && fifo_.size() < kFifoBytes; ++i) fifo_.push_back(static_cast<uint8_t>(value >> (8 * i)));
      return;
    case kPort:
      if (offset == 0 && size == 4) port_scratch_ = static_cast<uint32_t>(value);
      return;
    case kConfig:
      if (offset == 0x40 && size == 4) config_scratch_ = static_cast<uint32_t>(value);
      if (offset == legacy::kPciConfigCommand && size == 2) command_ = static_cast<uint32_t>(value);
      return;
  }
}

uint32_t ScratchDevice::dma() {
  // A device DMAs only while the guest lets it master the bus, and only within guest RAM:
  // an address in a BAR (its own registers included) or past RAM is refused, not followed.
  if (!(command_ & kCommandBusMaster)) return kBusMasterOff;
  if (!memory_ || dma_length_ > kMaxDma) return kOutsideRam;
  std::vector<vhost_user::HostRange> from, to;
  if (!memory_->gpa_to_ranges(dma_source_, dma_length_, from) || !memory_->gpa_to_ranges(dma_destination_, dma_length_, to))
    return kOutsideRam;
  std::vector<uint8_t> bounce;  // the ranges may overlap
  for (const auto& r : from) bounce.insert(bounce.end(), r.data, r.data + r.size);
  size_t at = 0;
  for (const auto& r : to) {
    std::memcpy(r.data, bounce.data() + at, r.size);
    at += r.size;
  }
  return kDone;
}

void ScratchDevice::attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) {
  (index == 0 ? intx_ : isa_).attach(loop_, std::move(trigger), std::move(resample));
}

}  // namespace bulkhead::device
