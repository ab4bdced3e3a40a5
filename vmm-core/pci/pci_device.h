// A PCI function's type-0 configuration header, BARs (memory or I/O) and capability list.
// The bus serialises configuration accesses; BAR accesses come straight from vCPU threads.
#pragma once

#include <array>
#include <cstdint>
#include <span>

namespace bulkhead::core {

class PciDevice {
 public:
  static constexpr int kBars = 6;
  static constexpr uint16_t kCommandIo = 1u << 0, kCommandMemory = 1u << 1, kCommandBusMaster = 1u << 2,
                            kCommandIntxDisable = 1u << 10;
  enum class BarKind { kMemory32, kMemory64, kIo };

  PciDevice(uint16_t vendor, uint16_t device, uint32_t class_code, uint8_t revision, uint16_t subsystem_vendor,
            uint16_t subsystem);
  virtual ~PciDevice() = default;

  uint32_t config_read(uint16_t offset, size_t size);
  void config_write(uint16_t offset, uint32_t value, size_t size);

  virtual void bar_read(int /*bar*/, uint64_t /*offset*/, std::span<uint8_t> data) { std::fill(data.begin(), data.end(), 0xff); }
  virtual void bar_write(int /*bar*/, uint64_t /*offset*/, std::span<const uint8_t> /*data*/) {}
  virtual void bar_read_string(int bar, uint64_t offset, uint8_t size, uint32_t count, uint8_t* items) {
    for (uint32_t i = 0; i < count; ++i) bar_read(bar, offset, {items + uint64_t{i} * size, size});
  }
  virtual void bar_write_string(int bar, uint64_t offset, uint8_t size, uint32_t count, const uint8_t* items) {
    for (uint32_t i = 0; i < count; ++i) bar_write(bar, offset, {items + uint64_t{i} * size, size});
  }
  // A BAR now decodes at `address` (0: not decoded); called by the bus under its lock.
  virtual void bar_mapped(int /*bar*/, uint64_t /*address*/) {}

  uint64_t bar_size(int bar) const { return bar_size_[bar]; }
  bool bar_is_io(int bar) const { return bar_kind_[bar] == BarKind::kIo; }
  // Where a BAR decodes now: its address while its kind of decoding is on, else 0.
  uint64_t bar_decode_address(int bar) const;
  void set_bar_address(int bar, uint64_t address) { bar_address_[bar] = address; }
  uint16_t command() const;
  void set_command(uint16_t command);
  // INTA..INTD as 1..4, or 0 for a function without INTx.
  uint8_t interrupt_pin() const { return config_[0x3d]; }
  // The GSI the platform wires this function's INTx to (the bus assigns it from the slot).
  // The Interrupt Line register starts with the same value but is the guest's scratch.
  void set_intx_gsi(uint32_t gsi);
  uint32_t intx_gsi() const { return intx_gsi_; }

 protected:
  // A BAR of `size` bytes (a power of two, >= 16 for memory, >= 4 for I/O); a 64-bit
  // memory BAR takes index+1 too.
  void define_bar(int index, uint64_t size, BarKind kind);
  // INTA..INTD as 1..4 (0: none); call in the constructor.
  void set_interrupt_pin(uint8_t pin) { config_[0x3d] = pin; }
  // Appends a capability (body[0] = ID; body[1] is filled with the link); returns its offset.
  // `at` (dword-aligned) places it there instead of after the previous one.
  uint8_t add_capability(std::span<const uint8_t> body, uint8_t at = 0);
  // Bytes of config space the guest may write (outside the standard header).
  void set_writable(uint16_t offset, std::span<const uint8_t> mask);
  // After the guest wrote [offset, offset+size) of config space outside the header.
  virtual void config_written(uint16_t /*offset*/, size_t /*size*/) {}
  // Before the guest reads [offset, offset+size): a chance to bring those bytes up to date.
  virtual void config_reading(uint16_t /*offset*/, size_t /*size*/) {}
  // Device-specific configuration space (kDeviceConfigStart and up) kept elsewhere (in a
  // device process): return true having served the access.
  virtual bool read_device_config(uint16_t /*offset*/, size_t /*size*/, uint32_t* /*value*/) { return false; }
  virtual bool write_device_config(uint16_t /*offset*/, uint32_t /*value*/, size_t /*size*/) { return false; }
  // The guest wrote the command register (decoding, bus mastering, INTx disable).
  virtual void command_changed(uint16_t /*command*/) {}
  static constexpr uint16_t kDeviceConfigStart = 0x40;
  uint8_t* config() { return config_.data(); }

 private:
  uint32_t bar_register(int index) const;
  void write_bar_register(int index, uint32_t value);

  std::array<uint8_t, 256> config_{};
  std::array<uint8_t, 256> writable_{};
  uint64_t bar_size_[kBars] = {};
  uint64_t bar_address_[kBars] = {};
  BarKind bar_kind_[kBars] = {};
  bool bar_upper_[kBars] = {};  // the high half of the 64-bit BAR before it
  uint32_t intx_gsi_ = 0;
  uint8_t next_capability_ = 0x40;
  uint8_t last_capability_ = 0;
};

}  // namespace bulkhead::core
