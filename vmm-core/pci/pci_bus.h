// PCI bus 0 behind configuration mechanism 1 (ports 0xcf8-0xcff), with a host bridge at
// 00:00.0 (Linux's PCI probe wants one). The core places every BAR itself, like firmware
// would, in the windows of platform.h, and follows the guest if it moves one or turns
// decoding off. Each slot's INTx is wired to a fixed GSI (platform::pci_intx_gsi).
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "vmm-core/bus.h"
#include "vmm-core/pci/pci_device.h"

namespace bulkhead::core {

class PciBus : public BusDevice {
 public:
  // Byte accesses to port 0xcf9 inside the address register go to `reset_control`, as on a
  // PIIX (the FADT's reset register points there). BARs appear on `pio` and `mmio`.
  PciBus(Bus& pio, Bus& mmio, std::shared_ptr<BusDevice> reset_control);

  // Adds `device` in the next slot, places its BARs and enables decoding. Returns the slot.
  int add(std::shared_ptr<PciDevice> device);

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  struct Slot {
    std::shared_ptr<PciDevice> device;
    uint64_t mapped[PciDevice::kBars] = {};
    std::vector<std::shared_ptr<BusDevice>> windows;
  };
  Slot* selected(uint16_t* reg);
  // Brings the buses in line with where the slot's BARs decode now.
  void update_mappings(Slot& slot);

  Bus& pio_;
  Bus& mmio_;
  std::shared_ptr<BusDevice> reset_control_;
  std::mutex mutex_;
  uint32_t address_ = 0;
  std::vector<Slot> slots_;
  uint64_t next_memory_bar_;
  uint64_t next_io_bar_;
};

}  // namespace bulkhead::core
