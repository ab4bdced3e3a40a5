// MSI-X for one PCI function: the table and pending-bit array the guest programs through a
// BAR, and the delivery of interrupt sources (eventfds a device signals, or events the core
// raises) to their vectors. A routable vector gets a KVM MSI route and the source's eventfd
// becomes an irqfd (no exit, no core involvement). A masked vector's events set its pending
// bit and fire on unmask. With MSI-X off, events go to the INTx fallback.
// Not thread-safe: the owning device serialises every call under its own lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <vector>

#include "vmm-core/eventfd_monitor.h"
#include "vmm-core/irq_router.h"

namespace bulkhead::core {

class Msix {
 public:
  static constexpr uint16_t kNoVector = 0xffff;
  static constexpr uint32_t kTableOffset = 0x000, kPbaOffset = 0x800, kRegionSize = 0x1000;

  // `monitor_callback(fd)` must lock the owner and call on_signal(fd).
  Msix(uint16_t vectors, IrqRouter& router, EventfdMonitor& monitor, std::function<void(int)> monitor_callback,
       std::function<void()> intx_fallback);
  ~Msix();

  uint16_t vectors() const { return static_cast<uint16_t>(entries_.size()); }
  // The 12-byte capability for PciDevice::add_capability, its table and PBA in BAR `bir`.
  std::vector<uint8_t> capability(uint8_t bir) const;
  // Message Control, as the guest wrote it into the capability.
  void control_written(uint16_t control);

  void region_read(uint64_t offset, std::span<uint8_t> data) const;
  void region_write(uint64_t offset, std::span<const uint8_t> data);

  // `fd` (an eventfd the device signals) interrupts through `vector` (kNoVector: nowhere).
  void bind(int fd, uint16_t vector);
  void unbind(int fd);
  // Raises an interrupt on `vector` from the core (e.g. a configuration change).
  void notify(uint16_t vector);
  // A monitored eventfd is readable: consume its count and deliver it (under the owner's lock,
  // so that no route change can come between the two).
  void on_signal(int fd);
  bool enabled() const { return enabled_; }

 private:
  struct Entry {
    uint64_t address = 0;
    uint32_t data = 0;
    bool masked = true;
    bool pending = false;
    int gsi = -1;
  };
  struct Source {
    uint16_t vector;
    enum class State { kNone, kIrqfd, kMonitored } state = State::kNone;
    uint32_t gsi = 0;
  };
  bool deliverable(uint16_t vector) const;
  void deliver(uint16_t vector);
  void refresh(int fd, Source& s);
  void refresh_all();

  std::vector<Entry> entries_;
  std::map<int, Source> sources_;
  bool enabled_ = false;
  bool function_masked_ = false;
  IrqRouter& router_;
  EventfdMonitor& monitor_;
  std::function<void(int)> monitor_callback_;
  std::function<void()> intx_fallback_;
};

}  // namespace bulkhead::core
