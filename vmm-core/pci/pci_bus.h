// PCI bus 0 behind configuration mechanism 1 (ports 0xcf8-0xcff), with a host bridge at
// 00:00.0 (Linux's PCI probe wants one). The core places every BAR itself, like firmware
// would, and follows the guest if it moves one or turns decoding off.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "vmm-core/bus.h"
#include "vmm-core/pci/pci_device.h"

namespace bulkhead::core {

class PciBus : public BusDevice {
 public:
  static constexpr uint16_t kConfigAddressPort = 0xcf8;
  static constexpr uint16_t kConfigPorts = 8;
  // Where BARs go: the 32-bit hole below the IOAPIC.
  static constexpr uint64_t kMmioWindowStart = 0xc0000000, kMmioWindowEnd = 0xfec00000;
  // Interrupt lines for INTx, in the IOAPIC's PCI range, one per slot (round robin).
  static constexpr uint8_t kFirstIntxGsi = 16, kIntxGsis = 8;

  // Byte accesses to port 0xcf9 inside the address register go to `reset_control`, as on a
  // PIIX (the FADT's reset register points there).
  PciBus(Bus& mmio, std::shared_ptr<BusDevice> reset_control);

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
  // Brings the MMIO bus in line with where the slot's BARs decode now.
  void update_mappings(Slot& slot);

  Bus& mmio_;
  std::shared_ptr<BusDevice> reset_control_;
  std::mutex mutex_;
  uint32_t address_ = 0;
  std::vector<Slot> slots_;
  uint64_t next_bar_ = kMmioWindowStart;
};

}  // namespace bulkhead::core
