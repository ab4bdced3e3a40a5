#include "vmm-core/bus.h"

#include <algorithm>
#include <cstdio>
#include <mutex>

#include "common/error.h"

namespace bulkhead::core {

void Bus::add(uint64_t base, uint64_t size, std::shared_ptr<BusDevice> device, std::string device_name) {
  std::unique_lock lock(mutex_);
  if (size == 0 || base + size < base) throw InputError(name_ + ": invalid window for " + device_name);
  for (const Window& w : windows_) {
    if (base < w.base + w.size && w.base < base + size) {
      char buffer[200];
      std::snprintf(buffer, sizeof buffer, "%s: %s at 0x%llx overlaps %s", name_.c_str(), device_name.c_str(),
                    static_cast<unsigned long long>(base), w.name.c_str());
      throw InputError(buffer);
    }
  }
  auto at = std::lower_bound(windows_.begin(), windows_.end(), base, [](const Window& w, uint64_t b) { return w.base < b; });
  windows_.insert(at, Window{base, size, std::move(device), std::move(device_name)});
}

bool Bus::remove(uint64_t base, const BusDevice* device) {
  std::unique_lock lock(mutex_);
  auto it = std::find_if(windows_.begin(), windows_.end(),
                         [&](const Window& w) { return w.base == base && w.device.get() == device; });
  if (it == windows_.end()) return false;
  windows_.erase(it);
  return true;
}

const Bus::Window* Bus::find(uint64_t address, uint64_t length) const {
  auto it = std::upper_bound(windows_.begin(), windows_.end(), address,
                             [](uint64_t a, const Window& w) { return a < w.base; });
  if (it == windows_.begin()) return nullptr;
  const Window& w = *--it;
  uint64_t offset = address - w.base;
  if (offset >= w.size || length > w.size - offset) return nullptr;
  return &w;
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> Bus::claim(uint64_t address, uint64_t length) const {
  std::shared_lock lock(mutex_);
  const Window* w = find(address, length);
  if (!w) return {nullptr, 0};
  return {w->device, address - w->base};
}

bool Bus::read(uint64_t address, std::span<uint8_t> data) const {
  auto [device, offset] = claim(address, data.size());
  if (!device) {
    std::fill(data.begin(), data.end(), 0xff);
    return false;
  }
  device->read(offset, data);
  return true;
}

bool Bus::write(uint64_t address, std::span<const uint8_t> data) const {
  auto [device, offset] = claim(address, data.size());
  if (!device) return false;
  device->write(offset, data);
  return true;
}

void Bus::read_string(uint64_t address, uint8_t size, uint32_t count, uint8_t* items) const {
  auto [device, offset] = claim(address, size);
  if (!device) {
    std::fill(items, items + uint64_t{count} * size, 0xff);
    return;
  }
  device->read_string(offset, size, count, items);
}

void Bus::write_string(uint64_t address, uint8_t size, uint32_t count, const uint8_t* items) const {
  auto [device, offset] = claim(address, size);
  if (device) device->write_string(offset, size, count, items);
}

}  // namespace bulkhead::core
