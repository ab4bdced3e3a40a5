#include "vmm-core/pci/pci_device.h"

#include <cstring>

namespace bulkhead::core {

namespace {
constexpr uint16_t kCommand = 0x04, kStatus = 0x06, kBar0 = 0x10, kCapabilityPointer = 0x34;
constexpr uint16_t kStatusCapabilityList = 1u << 4;
constexpr uint32_t kBarIo = 0x1, kBarMemory64 = 0x4;
}  // namespace

PciDevice::PciDevice(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision, uint16_t subsystem_vendor,
                     uint16_t subsystem) {
  std::memcpy(&config_[0x00], &vendor, 2);
  std::memcpy(&config_[0x02], &device, 2);
  config_[0x08] = revision;
  config_[0x09] = static_cast<uint8_t>(class_code);
  config_[0x0a] = static_cast<uint8_t>(class_code >> 8);
  config_[0x0b] = static_cast<uint8_t>(class_code >> 16);
  std::memcpy(&config_[0x2c], &subsystem_vendor, 2);
  std::memcpy(&config_[0x2e], &subsystem, 2);
  config_[0x3c] = 0xff;  // interrupt line: unknown until the bus assigns one
}

void PciDevice::set_intx_gsi(uint32_t gsi) {
  intx_gsi_ = gsi;
  config_[0x3c] = static_cast<uint8_t>(gsi);  // as firmware leaves it for the OS
}

uint16_t PciDevice::command() const {
  uint16_t c;
  std::memcpy(&c, &config_[kCommand], 2);
  return c;
}

void PciDevice::set_command(uint16_t command) {
  command &= kCommandIo | kCommandMemory | kCommandBusMaster | kCommandIntxDisable;
  std::memcpy(&config_[kCommand], &command, 2);
}

uint64_t PciDevice::bar_decode_address(int bar) const {
  uint16_t decode = bar_kind_[bar] == BarKind::kIo ? kCommandIo : kCommandMemory;
  return (command() & decode) && bar_size_[bar] ? bar_address_[bar] : 0;
}

void PciDevice::define_bar(int index, uint64_t size, BarKind kind) {
  bar_size_[index] = size;
  bar_kind_[index] = kind;
  if (kind == BarKind::kMemory64) bar_upper_[index + 1] = true;
}

uint8_t PciDevice::add_capability(std::span<const uint8_t> body, uint8_t at) {
  if (!at) at = next_capability_;
  std::memcpy(&config_[at], body.data(), body.size());
  config_[at + 1] = 0;
  if (last_capability_) config_[last_capability_ + 1] = at;
  else config_[kCapabilityPointer] = at;
  last_capability_ = at;
  next_capability_ = static_cast<uint8_t>((at + body.size() + 3) & ~3u);
  uint16_t status;
  std::memcpy(&status, &config_[kStatus], 2);
  status |= kStatusCapabilityList;
  std::memcpy(&config_[kStatus], &status, 2);
  return at;
}

void PciDevice::set_writable(uint16_t offset, std::span<const uint8_t> mask) {
  std::memcpy(&writable_[offset], mask.data(), mask.size());
}

uint32_t PciDevice::bar_register(int index) const {
  if (bar_upper_[index]) return static_cast<uint32_t>(bar_address_[index - 1] >> 32);
  if (!bar_size_[index]) return 0;
  uint32_t type = bar_kind_[index] == BarKind::kIo ? kBarIo : bar_kind_[index] == BarKind::kMemory64 ? kBarMemory64 : 0;
  return static_cast<uint32_t>(bar_address_[index]) | type;
}

void PciDevice::write_bar_register(int index, uint32_t value) {
  if (bar_upper_[index]) {
    uint64_t& address = bar_address_[index - 1];
    address = (address & 0xffffffffull) | (static_cast<uint64_t>(value) << 32);
    address &= ~(bar_size_[index - 1] - 1);
    return;
  }
  if (!bar_size_[index]) return;  // unimplemented BARs read 0 and ignore writes
  uint64_t& address = bar_address_[index];
  // Bits below the BAR's size read back as 0: that is how the guest learns the size. I/O
  // BARs decode 16-bit port numbers.
  uint32_t type_bits = bar_kind_[index] == BarKind::kIo ? 0x3u : 0xfu;
  address = (address & ~0xffffffffull) | (value & ~static_cast<uint32_t>(bar_size_[index] - 1) & ~type_bits);
  if (bar_kind_[index] == BarKind::kIo) address &= 0xffff;
}

uint32_t PciDevice::config_read(uint16_t offset, size_t size) {
  if (offset >= config_.size() || size > 4 || offset + size > config_.size()) return ~0u;
  uint32_t remote;
  if (offset >= kDeviceConfigStart && read_device_config(offset, size, &remote)) return remote;
  config_reading(offset, size);
  uint32_t value = 0;
  for (size_t i = 0; i < size; ++i) {
    uint16_t at = static_cast<uint16_t>(offset + i);
    uint8_t byte = config_[at];
    if (at >= kBar0 && at < kBar0 + 4 * kBars) byte = static_cast<uint8_t>(bar_register((at - kBar0) / 4) >> (8 * ((at - kBar0) % 4)));
    value |= static_cast<uint32_t>(byte) << (8 * i);
  }
  return value;
}

void PciDevice::config_write(uint16_t offset, uint32_t value, size_t size) {
  if (offset >= config_.size() || size > 4 || offset + size > config_.size()) return;
  if (offset >= kBar0 && offset < kBar0 + 4 * kBars) {
    if (size != 4 || offset % 4) return;  // BARs are written as whole dwords
    write_bar_register((offset - kBar0) / 4, value);
    return;
  }
  if (offset == kCommand && size >= 2) {
    set_command(static_cast<uint16_t>(value));
    command_changed(command());
    return;
  }
  if (offset >= kDeviceConfigStart && write_device_config(offset, value, size)) return;
  if (offset == 0x3c && size == 1) {
    config_[0x3c] = static_cast<uint8_t>(value);  // interrupt line: software scratch
    return;
  }
  bool touched = false;
  for (size_t i = 0; i < size; ++i) {
    uint16_t at = static_cast<uint16_t>(offset + i);
    uint8_t mask = writable_[at];
    if (!mask) continue;
    config_[at] = static_cast<uint8_t>((config_[at] & ~mask) | ((value >> (8 * i)) & mask));
    touched = true;
  }
  if (touched) config_written(offset, size);
}

}  // namespace bulkhead::core
