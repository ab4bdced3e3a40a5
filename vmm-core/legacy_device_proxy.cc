#include "vmm-core/legacy_device_proxy.h"

#include <linux/kvm.h>
#include <sys/eventfd.h>

#include <atomic>
#include <functional>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "ipc/legacy_device/sealed_memfd.h"
#include "vhost-user/frontend.h"
#include "vmm-core/kvm.h"

namespace bulkhead::core {

namespace {

using legacy::AccessRingProducer;
using legacy::DeviceLost;
using vhost_user::Message;

// How long the device may take to answer a handshake message.
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);

UniqueFd make_eventfd(const std::string& what) {
  // A fresh eventfd owned by the caller; KVM and the device get their own references.
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw_errno("eventfd for " + what);
  return fd;
}

// One register window of the device, reached through the access ring.
class RemoteRegion : public BusDevice {
 public:
  RemoteRegion(std::string name, uint8_t region, uint64_t size, std::shared_ptr<AccessRingProducer> ring, VmControl& vm)
      : name_(std::move(name)), region_(region), size_(size), ring_(std::move(ring)), vm_(vm) {}

  void read(uint64_t offset, std::span<uint8_t> data) override {
    if (!usable(offset, data.size())) return store_le(data, ~0ull);
    try {
      store_le(data, ring_->read(region_, offset, static_cast<uint8_t>(data.size())));
    } catch (const DeviceLost& e) {
      lost(e.what());
      store_le(data, ~0ull);
    }
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    if (!usable(offset, data.size())) return;
    try {
      ring_->write(region_, offset, static_cast<uint8_t>(data.size()), load_le(data));
    } catch (const DeviceLost& e) {
      lost(e.what());
    }
  }
  void read_string(uint64_t offset, uint8_t size, uint32_t count, uint8_t* items) override {
    if (!usable(offset, size) || uint64_t{count} * size > legacy::kBulkBytes) {
      std::memset(items, 0xff, uint64_t{count} * size);
      return;
    }
    try {
      ring_->read_string(region_, offset, size, count, items);
    } catch (const DeviceLost& e) {
      lost(e.what());
      std::memset(items, 0xff, uint64_t{count} * size);
    }
  }
  void write_string(uint64_t offset, uint8_t size, uint32_t count, const uint8_t* items) override {
    if (!usable(offset, size) || uint64_t{count} * size > legacy::kBulkBytes) return;
    try {
      ring_->write_string(region_, offset, size, count, items);
    } catch (const DeviceLost& e) {
      lost(e.what());
    }
  }

 private:
  bool usable(uint64_t offset, size_t length) const {
    return !lost_.load(std::memory_order_relaxed) && !ring_->abandoned() && length <= 8 && offset < size_ &&
           length <= size_ - offset;
  }
  void lost(const char* why) {
    // A restartable device is only lost for good when the supervisor gave up on it: the VM runs
    // on without it (its ports float) until `bulkhead ctl restart-device` brings it back.
    if (ring_->restartable()) return;
    if (!lost_.exchange(true)) vm_.device_lost(name_, why);
  }

  std::string name_;
  uint8_t region_;
  uint64_t size_;
  std::shared_ptr<AccessRingProducer> ring_;
  VmControl& vm_;
  std::atomic<bool> lost_{false};
};

}  // namespace

// The device's PCI function: the core keeps the standard header and places the BARs; the
// BARs' registers and device-specific configuration space are the device's, except for an
// MSI capability the core keeps (it decides where the device's INTx signals go).
class LegacyDeviceProxy::RemotePciFunction : public PciDevice {
 public:
  // MSI enabled or disabled, or its message changed: (enabled, address, data).
  using MsiChanged = std::function<void(bool, uint64_t, uint32_t)>;

  RemotePciFunction(const legacy::PciFunctionInfo& pci, std::vector<std::shared_ptr<BusDevice>> bar_regions,
                    std::shared_ptr<BusDevice> config)
      : PciDevice(pci.vendor, pci.device, pci.class_code, pci.revision, pci.subsystem_vendor, pci.subsystem),
        bar_regions_(std::move(bar_regions)),
        config_(std::move(config)),
        msi_(pci.msi_offset) {
    set_interrupt_pin(pci.interrupt_pin);
    if (msi_) {
      // MSI, 32-bit address, one vector: ID, next, control, address, data.
      const uint8_t capability[legacy::kMsiCapabilitySize] = {kMsiCapabilityId};
      add_capability(capability, msi_);
      const uint8_t writable[legacy::kMsiCapabilitySize] = {0, 0, 0x01, 0, 0xfc, 0xff, 0xff, 0xff, 0xff, 0xff};
      set_writable(msi_, writable);
    }
    for (int bar = 0; bar < legacy::kPciBars; ++bar)
      if (bar_regions_[bar])
        define_bar(bar, pci.bars[bar].size,
                   pci.bars[bar].kind == static_cast<uint8_t>(legacy::BarKind::kIo) ? BarKind::kIo : BarKind::kMemory32);
  }

  void bar_read(int bar, uint64_t offset, std::span<uint8_t> data) override { bar_regions_[bar]->read(offset, data); }
  void bar_write(int bar, uint64_t offset, std::span<const uint8_t> data) override {
    bar_regions_[bar]->write(offset, data);
  }
  void bar_read_string(int bar, uint64_t offset, uint8_t size, uint32_t count, uint8_t* items) override {
    bar_regions_[bar]->read_string(offset, size, count, items);
  }
  void bar_write_string(int bar, uint64_t offset, uint8_t size, uint32_t count, const uint8_t* items) override {
    bar_regions_[bar]->write_string(offset, size, count, items);
  }
  void on_msi_change(MsiChanged changed) { msi_changed_ = std::move(changed); }

 protected:
  bool read_device_config(uint16_t offset, size_t size, uint32_t* value) override {
    if (in_msi(offset, size)) return false;  // the core's own bytes
    std::vector<uint8_t> bytes(size, 0);
    if (config_) config_->read(offset, bytes);
    *value = static_cast<uint32_t>(load_le(bytes));
    return true;
  }
  bool write_device_config(uint16_t offset, uint32_t value, size_t size) override {
    if (in_msi(offset, size)) return false;
    std::vector<uint8_t> bytes(size);
    store_le(bytes, value);
    if (config_) config_->write(offset, bytes);
    return true;
  }
  void command_changed(uint16_t command) override {
    uint8_t bytes[2];
    store_le(bytes, command);
    if (config_) config_->write(legacy::kPciConfigCommand, bytes);
  }
  void config_written(uint16_t offset, size_t size) override {
    if (!in_msi(offset, size) || !msi_changed_) return;
    const uint8_t* c = config() + msi_;
    uint32_t address;
    uint16_t data;
    std::memcpy(&address, c + 4, 4);
    std::memcpy(&data, c + 8, 2);
    msi_changed_(c[2] & 0x01, address, data);
  }

 private:
  static constexpr uint8_t kMsiCapabilityId = 0x05;
  bool in_msi(uint16_t offset, size_t size) const {
    return msi_ && offset < msi_ + legacy::kMsiCapabilitySize && offset + size > msi_;
  }

  std::vector<std::shared_ptr<BusDevice>> bar_regions_;
  std::shared_ptr<BusDevice> config_;
  uint8_t msi_;
  MsiChanged msi_changed_;
};

namespace {

std::string kind_name(const legacy::DeviceInfo& info) {
  return std::string(info.kind, strnlen(info.kind, sizeof info.kind));
}

}  // namespace

LegacyDeviceProxy::LegacyDeviceProxy(std::string name, UniqueFd socket, const ipc::LegacyAttachment& attachment,
                                     const GuestMemory& memory, uint32_t poll_us, VmControl& vm)
    : name_(std::move(name)),
      attachment_(attachment),
      memory_(memory),
      poll_us_(poll_us),
      connection_(std::move(socket)),
      ring_(std::make_shared<AccessRingProducer>()),
      vm_(vm) {
  ring_->set_restartable(attachment.restartable());
  handshake([&](const legacy::DeviceInfo& info) {
    info_ = info;
    check_device_info();
  });
  ring_->set_peer_socket(connection_.fd());
}

void LegacyDeviceProxy::check_device_info() const {
  const ipc::LegacyAttachment& attachment = attachment_;
  auto refuse = [&](const std::string& why) { throw InputError("device " + name_ + " " + why); };
  if (kind_name(info_) != attachment.kind()) refuse("is a '" + kind_name(info_) + "', expected '" + attachment.kind() + "'");
  if (info_.num_regions > legacy::kMaxRegions) refuse("reports " + std::to_string(info_.num_regions) + " register windows");
  if (info_.num_irqs != static_cast<uint32_t>(attachment.irqs_size()))
    refuse("reports " + std::to_string(info_.num_irqs) + " interrupt lines, expected " +
           std::to_string(attachment.irqs_size()));
  for (const auto& w : attachment.windows())
    if (w.region() >= info_.num_regions || info_.region_size[w.region()] < w.size())
      refuse("has no register window " + std::to_string(w.region()) + " of " + std::to_string(w.size()) + " bytes");
  bool has_intx = false;
  for (const auto& irq : attachment.irqs()) has_intx |= irq.pci_intx();
  bool has_pci = info_.flags & legacy::kDeviceHasPciFunction;
  if (has_intx && !(has_pci && info_.pci.interrupt_pin)) refuse("has no PCI INTx line to connect");
  if (has_pci) {
    for (int bar = 0; bar < legacy::kPciBars; ++bar) {
      const legacy::PciBarInfo& b = info_.pci.bars[bar];
      if (b.kind == static_cast<uint8_t>(legacy::BarKind::kUnused)) continue;
      bool io = b.kind == static_cast<uint8_t>(legacy::BarKind::kIo);
      if ((b.kind != static_cast<uint8_t>(legacy::BarKind::kMemory32) && !io) || b.region >= info_.num_regions ||
          b.size < (io ? 4u : 16u) || (b.size & (b.size - 1)) || info_.region_size[b.region] > b.size)
        refuse("describes an invalid BAR " + std::to_string(bar));
    }
    const uint8_t msi = info_.pci.msi_offset;
    if (msi && (msi < legacy::kPciDeviceConfigStart || msi % 4 || msi > 256 - legacy::kMsiCapabilitySize ||
                !info_.pci.interrupt_pin))
      refuse("places its MSI capability at an invalid offset " + std::to_string(msi));
  }
  if (info_.state_size > legacy::kMaxStateSize)
    refuse("asks for " + std::to_string(info_.state_size) + " bytes of state, more than " +
           std::to_string(legacy::kMaxStateSize));
  if (attachment.restartable() && !info_.state_size) refuse("keeps no state a restarted process could resume");
}

void LegacyDeviceProxy::handshake(const std::function<void(const legacy::DeviceInfo&)>& check) {
  auto request = [](legacy::Request r) { return static_cast<uint32_t>(r); };
  connection_.set_reply_timeout(kHandshakeTimeout);
  connection_.send(Message::make_empty(static_cast<uint32_t>(vhost_user::Request::kSetOwner)));
  check(connection_.call(Message::make_empty(request(legacy::Request::kGetDeviceInfo))).payload_as<legacy::DeviceInfo>());

  if (info_.state_size) {
    if (!state_page_)
      state_page_ = legacy::make_sealed_memfd("bulkhead-device-state", info_.state_size, "the state page of " + name_);
    int fd = state_page_.get();
    connection_.send_with_ack(Message::make_empty(request(legacy::Request::kSetStatePage)), {&fd, 1}, "its state page");
  }
  if (info_.flags & legacy::kDeviceNeedsGuestMemory) {
    std::vector<vhost_user::Frontend::Region> regions;
    for (const RamRegion& r : memory_.regions())
      regions.push_back({{r.guest_address, r.size, reinterpret_cast<uint64_t>(r.host), r.file_offset}, memory_.fd()});
    std::vector<int> fds;
    Message table = vhost_user::Frontend::memory_table(regions, fds);
    connection_.send_with_ack(std::move(table), fds, "guest memory");
  }
  legacy::AccessRingSetting setting{poll_us_, 0};
  int fds[] = {ring_->memfd(), ring_->kick_fd(), ring_->notify_fd()};
  connection_.send_with_ack(Message::make(request(legacy::Request::kSetAccessRing), setting), fds, "the access ring");
}

std::string LegacyDeviceProxy::disconnect() {
  connection_ = vhost_user::Connection(UniqueFd());
  return ring_->take_timed_out() ? "device did not answer within 10 s" : "";
}

void LegacyDeviceProxy::reconnect(UniqueFd socket) {
  connection_ = vhost_user::Connection(std::move(socket));
  handshake([&](const legacy::DeviceInfo& info) {
    // Byte for byte: both come from the same executable's info(), padding included.
    if (std::memcmp(&info, &info_, sizeof info) != 0)
      throw InputError("device " + name_ + " describes itself differently after its restart");
  });
  for (uint32_t i = 0; i < irq_lines_.size(); ++i) send_irq(i);
  // vCPUs waiting for the dead process go on with this one.
  ring_->set_peer_socket(connection_.fd());
}

void LegacyDeviceProxy::send_irq(uint32_t index) {
  const IrqLine& line = irq_lines_[index];
  legacy::IrqSetting setting{index, line.resample ? legacy::kIrqLevel : 0};
  std::vector<int> fds = {line.trigger.get()};
  if (line.resample) fds.push_back(line.resample.get());
  connection_.send_with_ack(Message::make(static_cast<uint32_t>(legacy::Request::kSetIrq), setting), fds,
                            "its interrupt line");
}

std::shared_ptr<BusDevice> LegacyDeviceProxy::region(uint8_t index) {
  return std::make_shared<RemoteRegion>(name_, index, info_.region_size[index], ring_, vm_);
}

void LegacyDeviceProxy::attach(Bus& pio, Bus& mmio, PciBus& pci, IrqRouter& router) {
  for (const auto& w : attachment_.windows()) {
    Bus& bus = w.space() == ipc::LegacyAttachment::Window::PORT_IO ? pio : mmio;
    bus.add(w.base(), w.size(), region(static_cast<uint8_t>(w.region())), name_);
  }
  if (info_.flags & legacy::kDeviceHasPciFunction) {
    const legacy::PciFunctionInfo& p = info_.pci;
    std::vector<std::shared_ptr<BusDevice>> bars(legacy::kPciBars);
    for (int bar = 0; bar < legacy::kPciBars; ++bar)
      if (p.bars[bar].kind != static_cast<uint8_t>(legacy::BarKind::kUnused)) bars[bar] = region(p.bars[bar].region);
    std::shared_ptr<BusDevice> config = p.config_region < info_.num_regions ? region(p.config_region) : nullptr;
    pci_function_ = std::make_shared<RemotePciFunction>(p, std::move(bars), std::move(config));
    pci.add(pci_function_);
  }
  for (int i = 0; i < attachment_.irqs_size(); ++i) {
    const auto& irq = attachment_.irqs(i);
    uint32_t gsi = irq.pci_intx() ? pci_function_->intx_gsi() : irq.gsi();
    bool level = irq.level() || irq.pci_intx();
    UniqueFd trigger = make_eventfd(name_ + " interrupt");
    UniqueFd resample = level ? make_eventfd(name_ + " interrupt resample") : UniqueFd();
    router.assign_irqfd(trigger.get(), gsi, resample.get());
    if (irq.pci_intx() && info_.pci.msi_offset) steer_by_msi(router, trigger.get(), gsi, resample.get());
    irq_lines_.push_back({std::move(trigger), std::move(resample)});
    send_irq(static_cast<uint32_t>(i));
  }
}

// With MSI on, the device's INTx signals become messages: its irqfd moves from the slot's
// GSI (level, with resample) to an MSI route, and back when MSI is off. The device does not
// know: it signals on each rising edge of its output either way, which is MSI's semantics.
void LegacyDeviceProxy::steer_by_msi(IrqRouter& router, int trigger, uint32_t intx_gsi, int resample) {
  pci_function_->on_msi_change([this, &router, trigger, intx_gsi, resample](bool on, uint64_t address, uint32_t data) {
    if (on && msi_gsi_ < 0) {
      msi_gsi_ = static_cast<int64_t>(router.add_msi(address, data));
      router.deassign_irqfd(trigger, intx_gsi);
      router.assign_irqfd(trigger, static_cast<uint32_t>(msi_gsi_));
    } else if (on) {
      router.update_msi(static_cast<uint32_t>(msi_gsi_), address, data);
    } else if (msi_gsi_ >= 0) {
      router.deassign_irqfd(trigger, static_cast<uint32_t>(msi_gsi_));
      router.remove_msi(static_cast<uint32_t>(msi_gsi_));
      msi_gsi_ = -1;
      router.assign_irqfd(trigger, intx_gsi, resample);
    }
  });
}

}  // namespace bulkhead::core
