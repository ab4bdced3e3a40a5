#include "vmm-core/legacy_device_proxy.h"

#include <linux/kvm.h>
#include <sys/eventfd.h>

#include <atomic>

#include "common/error.h"
#include "common/log.h"
#include "vmm-core/kvm.h"

namespace bulkhead::core {

namespace {

using legacy::AccessRingProducer;
using legacy::DeviceLost;
using vhost_user::Message;

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

 private:
  bool usable(uint64_t offset, size_t length) const {
    return !lost_.load(std::memory_order_relaxed) && length <= 8 && offset < size_ && length <= size_ - offset;
  }
  void lost(const char* why) {
    if (lost_.exchange(true)) return;
    vm_.request_stop(ipc::VmStopped::VMM_ERROR, 1, "device " + name_ + " was lost: " + why);
  }

  std::string name_;
  uint8_t region_;
  uint64_t size_;
  std::shared_ptr<AccessRingProducer> ring_;
  VmControl& vm_;
  std::atomic<bool> lost_{false};
};

}  // namespace

LegacyDeviceProxy::LegacyDeviceProxy(std::string name, UniqueFd socket, legacy::DeviceKind expected_kind, int vm_fd,
                                     const std::vector<uint32_t>& gsis, uint32_t poll_us, VmControl& vm)
    : name_(std::move(name)), connection_(std::move(socket)), vm_(vm) {
  auto request = [](legacy::Request r) { return static_cast<uint32_t>(r); };
  connection_.send(Message::make_empty(static_cast<uint32_t>(vhost_user::Request::kSetOwner)));

  Message reply = connection_.call(Message::make_empty(request(legacy::Request::kGetDeviceInfo)));
  info_ = reply.payload_as<legacy::DeviceInfo>();
  if (info_.kind != static_cast<uint32_t>(expected_kind))
    throw InputError("device " + name_ + " is of kind " + std::to_string(info_.kind) + ", expected " +
                     std::to_string(static_cast<uint32_t>(expected_kind)));
  if (info_.num_regions > legacy::kMaxRegions || info_.num_irqs != gsis.size())
    throw InputError("device " + name_ + " reports " + std::to_string(info_.num_irqs) + " interrupt lines, expected " +
                     std::to_string(gsis.size()));
  if (info_.flags & legacy::kDeviceNeedsGuestMemory)
    throw InputError("device " + name_ + " asks for guest memory, which this core does not share yet");

  for (uint32_t i = 0; i < gsis.size(); ++i) {
    // A fresh eventfd owned by irqfds_; KVM keeps its own reference once registered.
    UniqueFd irqfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!irqfd) throw_errno("eventfd for " + name_ + " interrupt");
    kvm_irqfd assign{};
    assign.fd = static_cast<uint32_t>(irqfd.get());
    assign.gsi = gsis[i];
    kvm_ioctl(vm_fd, KVM_IRQFD, &assign, "KVM_IRQFD");
    legacy::IrqSetting setting{i, 0};
    int fd = irqfd.get();
    connection_.send_with_ack(Message::make(request(legacy::Request::kSetIrq), setting), {&fd, 1}, "its interrupt line");
    irqfds_.push_back(std::move(irqfd));
  }

  ring_ = std::make_shared<AccessRingProducer>();
  ring_->set_peer_socket(connection_.fd());
  legacy::AccessRingSetting setting{poll_us, 0};
  int fds[] = {ring_->memfd(), ring_->kick_fd(), ring_->notify_fd()};
  connection_.send_with_ack(Message::make(request(legacy::Request::kSetAccessRing), setting), fds, "the access ring");
}

std::shared_ptr<BusDevice> LegacyDeviceProxy::region(uint8_t region) {
  if (region >= info_.num_regions) throw InputError("device " + name_ + " has no register window " + std::to_string(region));
  return std::make_shared<RemoteRegion>(name_, region, info_.region_size[region], ring_, vm_);
}

}  // namespace bulkhead::core
