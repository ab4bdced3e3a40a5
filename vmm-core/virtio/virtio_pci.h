// The virtio 1.x PCI transport ("modern" only): common configuration, notifications through
// KVM ioeventfds (straight to the device, no exit to the core), ISR, device configuration,
// MSI-X with INTx fallback. The device behind it implements VirtioPciBackend.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "common/unique_fd.h"
#include "vmm-core/eventfd_monitor.h"
#include "vmm-core/irq_router.h"
#include "vmm-core/pci/msix.h"
#include "vmm-core/pci/pci_device.h"

namespace bulkhead::core {

// What the transport needs from the virtio device behind it.
class VirtioPciBackend {
 public:
  virtual ~VirtioPciBackend() = default;
  virtual uint16_t device_type() const = 0;  // virtio device ID (8 = SCSI, 2 = block, 1 = net)
  virtual uint32_t pci_class() const = 0;
  virtual uint64_t device_features() const = 0;
  virtual uint16_t queue_count() const = 0;
  virtual uint16_t max_queue_size() const = 0;
  virtual uint32_t config_size() const = 0;
  virtual void read_config(uint32_t offset, std::span<uint8_t> data) = 0;
  virtual void write_config(uint32_t offset, std::span<const uint8_t> data) = 0;

  struct Queue {
    uint16_t index;
    uint16_t size;
    uint64_t desc, avail, used;  // guest-physical
    int kick;                    // signalled by KVM on the guest's notify write
    int call;                    // the device signals it to interrupt the guest
    int err;                     // the device signals it when the ring is malformed
  };
  // DRIVER_OK: run the device with these features and enabled queues. Throws on failure.
  virtual void activate(uint64_t features, const std::vector<Queue>& queues) = 0;
  // The driver wrote status 0: stop every queue and forget the activation.
  virtual void reset() = 0;
};

class VirtioPciDevice : public PciDevice {
 public:
  static constexpr uint32_t kCommonOffset = 0x0000, kIsrOffset = 0x1000, kDeviceOffset = 0x2000, kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyMultiplier = 4;
  static constexpr uint64_t kBar0Size = 0x4000;
  static constexpr int kVirtioBar = 0, kMsixBar = 2;

  VirtioPciDevice(VirtioPciBackend& backend, int vm_fd, IrqRouter& router, EventfdMonitor& monitor);
  ~VirtioPciDevice() override;

  void bar_read(int bar, uint64_t offset, std::span<uint8_t> data) override;
  void bar_write(int bar, uint64_t offset, std::span<const uint8_t> data) override;
  void bar_mapped(int bar, uint64_t address) override;
  // The device's configuration changed (or it needs a reset): tell the driver.
  void config_changed(bool needs_reset);

 protected:
  void config_written(uint16_t offset, size_t size) override;
  void config_reading(uint16_t offset, size_t size) override;

 private:
  struct QueueState {
    uint16_t size;
    uint16_t vector = Msix::kNoVector;
    bool enabled = false;
    uint64_t desc = 0, avail = 0, used = 0;
    UniqueFd kick, call, err;
  };
  // Whether [offset, offset+size) touches the PCI_CFG data window, and where it points.
  bool pci_cfg_window(uint16_t offset, size_t size, int* bar, uint32_t* at, uint32_t* length);
  uint32_t common_read(uint64_t offset, size_t size);
  void common_write(uint64_t offset, uint32_t value, size_t size);
  void set_status(uint8_t status);
  void reset_locked();
  void register_notifications(uint64_t bar_address, bool assign);
  void raise_intx(uint8_t isr_bits);

  VirtioPciBackend& backend_;
  int vm_fd_;
  IrqRouter& router_;
  EventfdMonitor& monitor_;
  std::mutex mutex_;
  Msix msix_;
  uint8_t msix_cap_ = 0;
  uint8_t pci_cfg_cap_ = 0;
  std::vector<QueueState> queues_;
  uint32_t device_feature_select_ = 0, driver_feature_select_ = 0;
  uint64_t driver_features_ = 0;
  uint16_t config_vector_ = Msix::kNoVector;
  uint8_t status_ = 0;
  uint8_t config_generation_ = 0;
  uint16_t queue_select_ = 0;
  uint8_t isr_ = 0;
  bool activated_ = false;
  uint64_t notify_address_ = 0;  // where the ioeventfds are registered, 0 if nowhere
};

}  // namespace bulkhead::core
