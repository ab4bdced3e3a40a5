#include "vmm-core/irq_router.h"

#include <vector>

#include "common/error.h"
#include "vmm-core/kvm.h"
#include "vmm-core/kvm_abi.h"

namespace bulkhead::core {

namespace {
kvm_irq_routing_msi make_msi(uint64_t address, uint32_t data) {
  kvm_irq_routing_msi m{};
  m.address_lo = static_cast<uint32_t>(address);
  m.address_hi = static_cast<uint32_t>(address >> 32);
  m.data = data;
  return m;
}
}  // namespace

IrqRouter::IrqRouter(int vm_fd) : vm_fd_(vm_fd) {}

void IrqRouter::commit() {
  // KVM's defaults (GSI n -> IOAPIC pin n, and for n < 16 the 8259 pin too) must be part of
  // every table we set, or ISA interrupts would stop working.
  std::vector<kvm_irq_routing_entry> entries;
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    kvm_irq_routing_entry ioapic{};
    ioapic.gsi = gsi;
    ioapic.type = KVM_IRQ_ROUTING_IRQCHIP;
    ioapic.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
    ioapic.u.irqchip.pin = gsi;
    entries.push_back(ioapic);
    if (gsi < 16) {
      kvm_irq_routing_entry pic = ioapic;
      pic.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
      pic.u.irqchip.pin = gsi % 8;
      entries.push_back(pic);
    }
  }
  for (auto& [gsi, msi] : msi_routes_) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi = msi;
    entries.push_back(e);
  }
  KvmArray<KvmIrqRoutingHeader, kvm_irq_routing_entry> table(static_cast<uint32_t>(entries.size()));
  table.header()->nr = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), table.entries());
  kvm_ioctl(vm_fd_, kKvmSetGsiRouting, table.data(), "KVM_SET_GSI_ROUTING");
}

uint32_t IrqRouter::add_msi(uint64_t address, uint32_t data) {
  std::lock_guard lock(mutex_);
  uint32_t gsi = next_gsi_++;
  msi_routes_[gsi] = make_msi(address, data);
  commit();
  return gsi;
}

void IrqRouter::update_msi(uint32_t gsi, uint64_t address, uint32_t data) {
  std::lock_guard lock(mutex_);
  kvm_irq_routing_msi& m = msi_routes_.at(gsi);
  if (m.address_lo == static_cast<uint32_t>(address) && m.address_hi == static_cast<uint32_t>(address >> 32) && m.data == data)
    return;
  m = make_msi(address, data);
  commit();
}

void IrqRouter::remove_msi(uint32_t gsi) {
  std::lock_guard lock(mutex_);
  if (msi_routes_.erase(gsi)) commit();
}

void IrqRouter::assign_irqfd(int fd, uint32_t gsi, int resample_fd) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(fd);
  irqfd.gsi = gsi;
  if (resample_fd >= 0) {
    irqfd.flags = KVM_IRQFD_FLAG_RESAMPLE;
    irqfd.resamplefd = static_cast<uint32_t>(resample_fd);
  }
  kvm_ioctl(vm_fd_, KVM_IRQFD, &irqfd, "KVM_IRQFD");
}

void IrqRouter::deassign_irqfd(int fd, uint32_t gsi) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(fd);
  irqfd.gsi = gsi;
  irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  kvm_ioctl(vm_fd_, KVM_IRQFD, &irqfd, "KVM_IRQFD deassign");
}

void IrqRouter::signal_msi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  // KVM_SIGNAL_MSI returns >0 when delivered, 0 when the guest blocked it; both are fine.
  kvm_ioctl(vm_fd_, KVM_SIGNAL_MSI, &msi, "KVM_SIGNAL_MSI");
}

void IrqRouter::set_line(uint32_t gsi, bool level) {
  kvm_irq_level line{};
  line.irq = gsi;
  line.level = level ? 1 : 0;
  kvm_ioctl(vm_fd_, KVM_IRQ_LINE, &line, "KVM_IRQ_LINE");
}

}  // namespace bulkhead::core
