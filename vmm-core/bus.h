// Address spaces (port I/O, MMIO) and the devices on them.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace bulkhead::core {

// A device as the bus sees it: reads and writes at an offset into its window.
class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // String port I/O (rep ins/outs): `count` items of `size` bytes at one address. By
  // default item by item; devices in other processes take the whole string at once.
  virtual void read_string(uint64_t offset, uint8_t size, uint32_t count, uint8_t* items) {
    for (uint32_t i = 0; i < count; ++i) read(offset, {items + uint64_t{i} * size, size});
  }
  virtual void write_string(uint64_t offset, uint8_t size, uint32_t count, const uint8_t* items) {
    for (uint32_t i = 0; i < count; ++i) write(offset, {items + uint64_t{i} * size, size});
  }
};

class Bus {
 public:
  explicit Bus(std::string name) : name_(std::move(name)) {}

  // Throws if [base, base+size) overlaps a window already on the bus. Windows may be added
  // and removed while vCPUs dispatch (PCI BARs move).
  void add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device, std::string device_name);
  // Removes the window starting at `base` that belongs to `device`; false if there is none.
  bool remove(uint64_t base, const BusDevice* device);

  // Dispatch an access that lies wholly inside one window. Returns false when no device
  // claims it; reads then see all-ones, as on a real bus with nothing there.
  bool read(uint64_t address, std::span<uint8_t> data) const;
  bool write(uint64_t address, std::span<const uint8_t> data) const;
  void read_string(uint64_t address, uint8_t size, uint32_t count, uint8_t* items) const;
  void write_string(uint64_t address, uint8_t size, uint32_t count, const uint8_t* items) const;

 private:
  struct Window {
    uint64_t base;
    uint64_t size;
    std::shared_ptr<BusDevice> device;
    std::string name;
  };
  const Window* find(uint64_t address, uint64_t length) const;
  // The device whose window holds the whole access, and the offset in it (null if none).
  // The device then runs without the bus lock, so it may move its own windows.
  std::pair<std::shared_ptr<BusDevice>, uint64_t> claim(uint64_t address, uint64_t length) const;

  std::string name_;
  mutable std::shared_mutex mutex_;
  std::vector<Window> windows_;  // sorted by base, never overlapping
};

// Little-endian helpers for device models.
inline uint64_t load_le(std::span<const uint8_t> data) {
  uint64_t v = 0;
  for (size_t i = 0; i < data.size() && i < 8; ++i) v |= uint64_t{data[i]} << (8 * i);
  return v;
}
inline void store_le(std::span<uint8_t> data, uint64_t v) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = i < 8 ? static_cast<uint8_t>(v >> (8 * i)) : 0;
}

}  // namespace bulkhead::core
