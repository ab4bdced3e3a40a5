#include "vmm-core/pci/pci_bus.h"

#include "common/error.h"
#include "vmm-core/platform.h"

namespace bulkhead::core {

namespace {

constexpr uint32_t kEnable = 0x80000000u;
constexpr uint32_t kClassHostBridge = 0x060000;

class HostBridge : public PciDevice {
 public:
  HostBridge() : PciDevice(0x1b36, 0x0008, kClassHostBridge, 0, 0x1af4, 0x1100) {}
};

// A BAR as a window on the MMIO bus.
class BarWindow : public BusDevice {
 public:
  BarWindow(std::shared_ptr<PciDevice> device, int bar) : device_(std::move(device)), bar_(bar) {}
  void read(uint64_t offset, std::span<uint8_t> data) override { device_->bar_read(bar_, offset, data); }
  void write(uint64_t offset, std::span<const uint8_t> data) override { device_->bar_write(bar_, offset, data); }
  void read_string(uint64_t offset, uint8_t size, uint32_t count, uint8_t* items) override {
    device_->bar_read_string(bar_, offset, size, count, items);
  }
  void write_string(uint64_t offset, uint8_t size, uint32_t count, const uint8_t* items) override {
    device_->bar_write_string(bar_, offset, size, count, items);
  }

 private:
  std::shared_ptr<PciDevice> device_;
  int bar_;
};

}  // namespace

PciBus::PciBus(Bus& pio, Bus& mmio, std::shared_ptr<BusDevice> reset_control)
    : pio_(pio), mmio_(mmio), reset_control_(std::move(reset_control)), next_memory_bar_(platform::kPciMmioStart),
      next_io_bar_(platform::kPciIoStart) {
  add(std::make_shared<HostBridge>());
}

int PciBus::add(std::shared_ptr<PciDevice> device) {
  std::lock_guard lock(mutex_);
  if (slots_.size() >= platform::kPciSlots) throw InputError("no free PCI slot");
  int slot = static_cast<int>(slots_.size());
  for (int bar = 0; bar < PciDevice::kBars; ++bar) {
    uint64_t size = device->bar_size(bar);
    if (!size) continue;
    bool io = device->bar_is_io(bar);
    uint64_t& next = io ? next_io_bar_ : next_memory_bar_;
    uint64_t at = (next + size - 1) & ~(size - 1);
    if (at + size > (io ? platform::kPciIoEnd : platform::kPciMmioEnd))
      throw InputError(io ? "the PCI I/O window is full" : "the PCI MMIO window is full");
    device->set_bar_address(bar, at);
    next = at + size;
  }
  if (device->interrupt_pin()) device->set_intx_gsi(platform::pci_intx_gsi(slot, device->interrupt_pin() - 1));
  device->set_command(PciDevice::kCommandIo | PciDevice::kCommandMemory | PciDevice::kCommandBusMaster);
  slots_.push_back(Slot{std::move(device), {}, std::vector<std::shared_ptr<BusDevice>>(PciDevice::kBars)});
  update_mappings(slots_.back());
  return slot;
}

void PciBus::update_mappings(Slot& slot) {
  for (int bar = 0; bar < PciDevice::kBars; ++bar) {
    uint64_t now = slot.device->bar_decode_address(bar);
    if (now == slot.mapped[bar]) continue;
    Bus& bus = slot.device->bar_is_io(bar) ? pio_ : mmio_;
    if (slot.mapped[bar]) bus.remove(slot.mapped[bar], slot.windows[bar].get());
    slot.mapped[bar] = 0;
    if (now) {
      auto window = std::make_shared<BarWindow>(slot.device, bar);
      try {
        bus.add(now, slot.device->bar_size(bar), window, "PCI BAR");
        slot.windows[bar] = window;
        slot.mapped[bar] = now;
      } catch (const InputError&) {
        // The guest placed the BAR over something else: it does not decode until moved.
      }
    }
    slot.device->bar_mapped(bar, slot.mapped[bar]);
  }
}

PciBus::Slot* PciBus::selected(uint16_t* reg) {
  if (!(address_ & kEnable)) return nullptr;
  uint32_t bus = (address_ >> 16) & 0xff, device = (address_ >> 11) & 0x1f, function = (address_ >> 8) & 0x7;
  if (bus != 0 || function != 0 || device >= slots_.size()) return nullptr;
  *reg = static_cast<uint16_t>(address_ & 0xfc);
  return &slots_[device];
}

void PciBus::read(uint64_t offset, std::span<uint8_t> data) {
  if (offset == 1 && data.size() == 1) return reset_control_->read(0, data);
  std::lock_guard lock(mutex_);
  uint32_t value = ~0u;
  if (offset == 0 && data.size() == 4) {
    value = address_;
  } else if (offset >= 4) {
    uint16_t reg;
    if (Slot* slot = selected(&reg)) value = slot->device->config_read(static_cast<uint16_t>(reg + offset - 4), data.size());
  }
  store_le(data, value);
}

void PciBus::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == 1 && data.size() == 1) return reset_control_->write(0, data);
  std::lock_guard lock(mutex_);
  uint32_t value = static_cast<uint32_t>(load_le(data));
  if (offset == 0) {
    if (data.size() == 4) address_ = value & 0x80fffffcu;  // byte writes probe for mechanism 2: ignored
    return;
  }
  uint16_t reg;
  Slot* slot = selected(&reg);
  if (!slot) return;
  slot->device->config_write(static_cast<uint16_t>(reg + offset - 4), value, data.size());
  update_mappings(*slot);
}

}  // namespace bulkhead::core
