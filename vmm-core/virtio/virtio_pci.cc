#include "vmm-core/virtio/virtio_pci.h"

#include <linux/kvm.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "vhost-user/protocol.h"
#include "vmm-core/kvm.h"

namespace bulkhead::core {

namespace status = vhost_user::status;

namespace {

constexpr uint16_t kVendor = 0x1af4, kModernDeviceBase = 0x1040, kSubsystem = 0x1100;
constexpr uint8_t kCapVendor = 0x09;
constexpr uint8_t kCfgCommon = 1, kCfgNotify = 2, kCfgIsr = 3, kCfgDevice = 4, kCfgPci = 5;
constexpr uint32_t kCommonSize = 0x38;
constexpr uint8_t kIsrQueue = 0x1, kIsrConfig = 0x2;
constexpr uint16_t kStatusInterrupt = 1u << 3;

UniqueFd make_eventfd() {
  // A fresh eventfd; the device and KVM get their own references to it.
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw_errno("eventfd");
  return fd;
}

std::vector<uint8_t> virtio_cap(uint8_t type, uint8_t bar, uint32_t offset, uint32_t length, size_t size = 16) {
  std::vector<uint8_t> cap(size, 0);
  cap[0] = kCapVendor;
  cap[2] = static_cast<uint8_t>(size);
  cap[3] = type;
  cap[4] = bar;
  std::memcpy(&cap[8], &offset, 4);
  std::memcpy(&cap[12], &length, 4);
  return cap;
}

}  // namespace

VirtioPciDevice::VirtioPciDevice(VirtioPciBackend& backend, int vm_fd, IrqRouter& router, EventfdMonitor& monitor)
    : PciDevice(kVendor, static_cast<uint16_t>(kModernDeviceBase + backend.device_type()),
                backend.pci_class(), 1, kVendor, kSubsystem),
      backend_(backend),
      vm_fd_(vm_fd),
      router_(router),
      monitor_(monitor),
      msix_(static_cast<uint16_t>(backend.queue_count() + 1), router, monitor,
            [this](int fd) {
              std::lock_guard lock(mutex_);
              msix_.on_signal(fd);
            },
            [this] { raise_intx(kIsrQueue); }) {
  define_bar(kVirtioBar, kBar0Size, BarKind::kMemory32);
  define_bar(kMsixBar, Msix::kRegionSize, BarKind::kMemory32);
  set_interrupt_pin(1);
  msix_cap_ = add_capability(msix_.capability(kMsixBar));
  uint8_t control_mask[2] = {0x00, 0xc0};  // enable and function-mask bits of Message Control
  set_writable(static_cast<uint16_t>(msix_cap_ + 2), control_mask);
  add_capability(virtio_cap(kCfgCommon, kVirtioBar, kCommonOffset, kCommonSize));
  std::vector<uint8_t> notify =
      virtio_cap(kCfgNotify, kVirtioBar, kNotifyOffset, kNotifyMultiplier * backend.queue_count(), 20);
  std::memcpy(&notify[16], &kNotifyMultiplier, 4);
  add_capability(notify);
  add_capability(virtio_cap(kCfgIsr, kVirtioBar, kIsrOffset, 1));
  if (backend.config_size()) add_capability(virtio_cap(kCfgDevice, kVirtioBar, kDeviceOffset, backend.config_size()));
  // VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through configuration space.
  pci_cfg_cap_ = add_capability(virtio_cap(kCfgPci, 0, 0, 0, 20));
  uint8_t window_mask[16] = {0xff, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  set_writable(static_cast<uint16_t>(pci_cfg_cap_ + 4), window_mask);
  queues_.resize(backend.queue_count());
  for (QueueState& q : queues_) {
    q.size = backend.max_queue_size();
    q.kick = make_eventfd();
    q.call = make_eventfd();
    q.err = make_eventfd();
    monitor_.watch(q.err.get(), [this, fd = q.err.get()] {
      if (!EventfdMonitor::consume(fd)) return;
      spdlog::warn("virtio device reported a malformed ring; it needs a reset");
      config_changed(true);
    });
  }
}

VirtioPciDevice::~VirtioPciDevice() {
  for (QueueState& q : queues_) {
    monitor_.unwatch(q.err.get());
    msix_.unbind(q.call.get());
  }
  if (notify_address_) register_notifications(notify_address_, false);
}

bool VirtioPciDevice::pci_cfg_window(uint16_t offset, size_t size, int* bar, uint32_t* at, uint32_t* length) {
  uint16_t data = static_cast<uint16_t>(pci_cfg_cap_ + 16);
  if (offset >= data + 4 || offset + size <= data) return false;
  *bar = config()[pci_cfg_cap_ + 4];
  std::memcpy(at, config() + pci_cfg_cap_ + 8, 4);
  std::memcpy(length, config() + pci_cfg_cap_ + 12, 4);
  return (*bar == kVirtioBar || *bar == kMsixBar) && (*length == 1 || *length == 2 || *length == 4);
}

void VirtioPciDevice::config_reading(uint16_t offset, size_t size) {
  int bar;
  uint32_t at, length;
  if (!pci_cfg_window(offset, size, &bar, &at, &length)) return;
  bar_read(bar, at, {config() + pci_cfg_cap_ + 16, length});
}

void VirtioPciDevice::config_written(uint16_t offset, size_t size) {
  int bar;
  uint32_t at, length;
  if (pci_cfg_window(offset, size, &bar, &at, &length)) bar_write(bar, at, {config() + pci_cfg_cap_ + 16, length});
  if (offset <= msix_cap_ + 3 && offset + size > msix_cap_ + 2u) {
    uint16_t control;
    std::memcpy(&control, config() + msix_cap_ + 2, 2);
    std::lock_guard lock(mutex_);
    msix_.control_written(control);
  }
}

void VirtioPciDevice::register_notifications(uint64_t bar_address, bool assign) {
  for (size_t i = 0; i < queues_.size(); ++i) {
    kvm_ioeventfd io{};
    io.addr = bar_address + kNotifyOffset + kNotifyMultiplier * i;
    io.len = 2;  // the 16-bit notify write every driver uses; other sizes exit and are forwarded
    io.fd = queues_[i].kick.get();
    io.flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN;
    kvm_ioctl(vm_fd_, KVM_IOEVENTFD, &io, "KVM_IOEVENTFD");
  }
}

void VirtioPciDevice::bar_mapped(int bar, uint64_t address) {
  if (bar != kVirtioBar || address == notify_address_) return;
  if (notify_address_) register_notifications(notify_address_, false);
  if (address) register_notifications(address, true);
  notify_address_ = address;
}

void VirtioPciDevice::raise_intx(uint8_t isr_bits) {
  isr_ |= isr_bits;
  uint16_t st;
  std::memcpy(&st, config() + 0x06, 2);
  st |= kStatusInterrupt;
  std::memcpy(config() + 0x06, &st, 2);
  if (!(command() & kCommandIntxDisable)) router_.set_line(intx_gsi(), true);
}

void VirtioPciDevice::config_changed(bool needs_reset) {
  std::lock_guard lock(mutex_);
  if (needs_reset) status_ |= status::kNeedsReset;
  ++config_generation_;
  if (msix_.enabled()) msix_.notify(config_vector_);
  else raise_intx(kIsrConfig);
}

uint32_t VirtioPciDevice::common_read(uint64_t offset, size_t size) {
  uint8_t snap[0x40] = {};
  auto put16 = [&](size_t at, uint16_t v) { std::memcpy(&snap[at], &v, 2); };
  auto put32 = [&](size_t at, uint32_t v) { std::memcpy(&snap[at], &v, 4); };
  uint64_t features = backend_.device_features();
  put32(0x00, device_feature_select_);
  put32(0x04, device_feature_select_ < 2 ? static_cast<uint32_t>(features >> (32 * device_feature_select_)) : 0);
  put32(0x08, driver_feature_select_);
  put32(0x0c, driver_feature_select_ < 2 ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_)) : 0);
  put16(0x10, config_vector_);
  put16(0x12, static_cast<uint16_t>(queues_.size()));
  snap[0x14] = status_;
  snap[0x15] = config_generation_;
  put16(0x16, queue_select_);
  if (queue_select_ < queues_.size()) {
    const QueueState& q = queues_[queue_select_];
    put16(0x18, q.size);
    put16(0x1a, q.vector);
    put16(0x1c, q.enabled ? 1 : 0);
    put16(0x1e, queue_select_);  // notify offset, in multiples of kNotifyMultiplier
    put32(0x20, static_cast<uint32_t>(q.desc));
    put32(0x24, static_cast<uint32_t>(q.desc >> 32));
    put32(0x28, static_cast<uint32_t>(q.avail));
    put32(0x2c, static_cast<uint32_t>(q.avail >> 32));
    put32(0x30, static_cast<uint32_t>(q.used));
    put32(0x34, static_cast<uint32_t>(q.used >> 32));
  }
  uint32_t value = 0;
  if (offset + size <= sizeof snap) std::memcpy(&value, &snap[offset], size);
  return value;
}

void VirtioPciDevice::common_write(uint64_t offset, uint32_t value, size_t size) {
  auto set_half = [&](uint64_t& field, bool high) {
    field = high ? (field & 0xffffffffull) | (static_cast<uint64_t>(value) << 32) : (field & ~0xffffffffull) | value;
  };
  QueueState* q = queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
  bool queue_live = q && (q->enabled || activated_);  // a running queue's layout is fixed
  switch (offset) {
    case 0x00: device_feature_select_ = value; break;
    case 0x08: driver_feature_select_ = value; break;
    case 0x0c:
      if (driver_feature_select_ < 2 && !(status_ & status::kFeaturesOk))
        set_half(driver_features_, driver_feature_select_ == 1);
      break;
    case 0x10: config_vector_ = value < msix_.vectors() ? static_cast<uint16_t>(value) : Msix::kNoVector; break;
    case 0x14: set_status(static_cast<uint8_t>(value)); break;
    case 0x16: queue_select_ = static_cast<uint16_t>(value); break;
    case 0x18:
      if (q && !queue_live && value && value <= backend_.max_queue_size() && !(value & (value - 1)))
        q->size = static_cast<uint16_t>(value);
      break;
    case 0x1a:
      if (q) {
        q->vector = value < msix_.vectors() ? static_cast<uint16_t>(value) : Msix::kNoVector;
        msix_.bind(q->call.get(), q->vector);
      }
      break;
    case 0x1c:
      if (q && value == 1) q->enabled = true;
      break;
    case 0x20: case 0x24: if (q && !queue_live) set_half(q->desc, offset == 0x24); break;
    case 0x28: case 0x2c: if (q && !queue_live) set_half(q->avail, offset == 0x2c); break;
    case 0x30: case 0x34: if (q && !queue_live) set_half(q->used, offset == 0x34); break;
    default: break;  // read-only fields
  }
  (void)size;
}

void VirtioPciDevice::set_status(uint8_t value) {
  if (value == 0) return reset_locked();
  uint8_t added = value & ~status_;
  if (added & status::kFeaturesOk) {
    uint64_t offered = backend_.device_features();
    if ((driver_features_ & ~offered) || !(driver_features_ & vhost_user::feature::kVersion1)) value &= ~status::kFeaturesOk;
  }
  status_ = value | (status_ & status::kNeedsReset);
  if ((added & status::kDriverOk) && (status_ & status::kFeaturesOk) && !activated_) {
    std::vector<VirtioPciBackend::Queue> queues;
    for (size_t i = 0; i < queues_.size(); ++i) {
      QueueState& q = queues_[i];
      if (!q.enabled) continue;
      msix_.bind(q.call.get(), q.vector);
      queues.push_back({static_cast<uint16_t>(i), q.size, q.desc, q.avail, q.used, q.kick.get(), q.call.get(), q.err.get()});
    }
    try {
      backend_.activate(driver_features_, queues);
      activated_ = true;
    } catch (const std::exception& e) {
      spdlog::error("virtio device failed to start: {}", e.what());
      status_ |= status::kNeedsReset;
      ++config_generation_;
      if (msix_.enabled()) msix_.notify(config_vector_);
      else raise_intx(kIsrConfig);
    }
  }
}

void VirtioPciDevice::reset_locked() {
  if (activated_) {
    try {
      backend_.reset();
    } catch (const std::exception& e) {
      spdlog::error("virtio device failed to reset: {}", e.what());
    }
  }
  activated_ = false;
  for (QueueState& q : queues_) {
    q.size = backend_.max_queue_size();
    q.vector = Msix::kNoVector;
    msix_.bind(q.call.get(), q.vector);
    q.enabled = false;
    q.desc = q.avail = q.used = 0;
  }
  driver_features_ = 0;
  device_feature_select_ = driver_feature_select_ = 0;
  config_vector_ = Msix::kNoVector;
  queue_select_ = 0;
  status_ = 0;
  if (isr_) {
    isr_ = 0;
    router_.set_line(intx_gsi(), false);
  }
}

void VirtioPciDevice::bar_read(int bar, uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  std::fill(data.begin(), data.end(), 0);
  if (bar == kMsixBar) return msix_.region_read(offset, data);
  if (bar != kVirtioBar || data.size() > 4) return;
  if (offset < kCommonOffset + kCommonSize) {
    uint32_t v = common_read(offset, data.size());
    std::memcpy(data.data(), &v, data.size());
  } else if (offset == kIsrOffset) {
    // Reading the ISR acknowledges the interrupt and lowers INTx.
    data[0] = isr_;
    if (isr_) {
      isr_ = 0;
      uint16_t st;
      std::memcpy(&st, config() + 0x06, 2);
      st &= ~kStatusInterrupt;
      std::memcpy(config() + 0x06, &st, 2);
      router_.set_line(intx_gsi(), false);
    }
  } else if (offset >= kDeviceOffset && offset - kDeviceOffset + data.size() <= backend_.config_size()) {
    backend_.read_config(static_cast<uint32_t>(offset - kDeviceOffset), data);
  }
}

void VirtioPciDevice::bar_write(int bar, uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (bar == kMsixBar) return msix_.region_write(offset, data);
  if (bar != kVirtioBar || data.size() > 4) return;
  uint32_t value = 0;
  std::memcpy(&value, data.data(), data.size());
  if (offset < kCommonOffset + kCommonSize) {
    common_write(offset, value, data.size());
  } else if (offset >= kDeviceOffset && offset - kDeviceOffset + data.size() <= backend_.config_size()) {
    backend_.write_config(static_cast<uint32_t>(offset - kDeviceOffset), data);
  } else if (offset >= kNotifyOffset && (offset - kNotifyOffset) / kNotifyMultiplier < queues_.size()) {
    // A notify of a size the ioeventfd does not match: forward it to the device ourselves.
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n =
        ::write(queues_[(offset - kNotifyOffset) / kNotifyMultiplier].kick.get(), &one, sizeof one);
  }
}

}  // namespace bulkhead::core
