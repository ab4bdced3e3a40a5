// The VM's interrupt routing: KVM's default ISA/IOAPIC routes plus MSI routes for PCI
// devices, irqfds bound to them, and direct injection (MSI, level lines). Thread-safe.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <map>
#include <mutex>

#include "vmm-core/platform.h"

namespace bulkhead::core {

class IrqRouter {
 public:
  static constexpr uint32_t kIoapicPins = platform::kIoapicPins;

  explicit IrqRouter(int vm_fd);

  // A new GSI routed to the MSI message (address, data).
  uint32_t add_msi(uint64_t address, uint32_t data);
  void update_msi(uint32_t gsi, uint64_t address, uint32_t data);
  void remove_msi(uint32_t gsi);

  // Binds an eventfd to a GSI: each signal injects that interrupt, without the core. With a
  // `resample_fd` the line is level-triggered: it stays asserted until the guest's EOI,
  // then KVM lowers it and signals `resample_fd`.
  void assign_irqfd(int fd, uint32_t gsi, int resample_fd = -1);
  void deassign_irqfd(int fd, uint32_t gsi);

  void signal_msi(uint64_t address, uint32_t data);
  // Drives an IOAPIC/PIC input (level-triggered PCI INTx).
  void set_line(uint32_t gsi, bool level);

 private:
  void commit();  // KVM_SET_GSI_ROUTING with the whole table

  int vm_fd_;
  std::mutex mutex_;
  std::map<uint32_t, kvm_irq_routing_msi> msi_routes_;
  uint32_t next_gsi_ = kIoapicPins;
};

}  // namespace bulkhead::core
