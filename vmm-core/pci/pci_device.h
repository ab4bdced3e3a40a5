// A PCI function's type-0 configuration header, memory BARs and capability list. The bus
// serialises configuration accesses; BAR accesses come straight from vCPU threads.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace bulkhead::core {

class PciDevice {
 public:
  static constexpr int kBars = 6;
  static constexpr uint16_t kCommandMemory = 1u << 1, kCommandBusMaster = 1u << 2, kCommandIntxDisable = 1u << 10;

  PciDevice(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision, uint16_t subsystem_vendor,
            uint16_t subsystem);
  virtual ~PciDevice() = default;

  uint32_t config_read(uint16_t offset, size_t size);
  void config_write(uint16_t offset, uint32_t value, size_t size);

  virtual void bar_read(int /*bar*/, uint64_t /*offset*/, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0xff); }
  virtual void bar_write(int /*bar*/, uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}
  // A BAR now decodes at `address` (0: not decoded); called by the bus outside config locks.
  virtual void bar_mapped(int /*bar*/, uint64_t /*address*/) {}

  uint64_t bar_size(int bar) const { return bar_size_[bar]; }
  // Where a BAR decodes now: its address while memory decoding is on, else 0.
  uint64_t bar_decode_address(int bar) const;
  void set_bar_address(int bar, uint64_t address) { bar_address_[bar] = address; }
  uint16_t command() const;
  void set_command(uint16_t command);
  void set_interrupt(uint8_t line, uint8_t pin);
  uint8_t interrupt_line() const { return config_[0x3c]; }

 protected:
  // A memory BAR of `size` bytes (a power of two, >= 16); a 64-bit BAR takes index+1 too.
  void define_bar(int index, uint64_t size, bool is64);
  // Appends a capability (body[0] = ID; body[1] is filled with the link); returns its offset.
  uint8_t add_capability(std::span<const uint8_t> body);
  // Bytes of config space the guest may write (outside the standard header).
  void set_writable(uint16_t offset, std::span<const uint8_t> mask);
  // After the guest wrote [offset, offset+size) of config space outside the header.
  virtual void config_written(uint16_t /*offset*/, size_t /*size*/) {}
  // Before the guest reads [offset, offset+size): a chance to bring those bytes up to date.
  virtual void config_reading(uint16_t /*offset*/, size_t /*size*/) {}
  uint8_t* config() { return config_.data(); }

 private:
  uint32_t bar_register(int index) const;
  void write_bar_register(int index, uint32_t value);

  std::array<uint8_t, 256> config_{};
  std::array<uint8_t, 256> writable_{};
  uint64_t bar_size_[kBars] = {};
  uint64_t bar_address_[kBars] = {};
  bool bar_is64_[kBars] = {};
  bool bar_upper_[kBars] = {};  // the high half of the 64-bit BAR before it
  uint8_t next_capability_ = 0x40;
  uint8_t last_capability_ = 0;
};

}  // namespace bulkhead::core
