// The core's end of a legacy device process: the handshake, the guest memory it may DMA
// into, the interrupt lines it drives, and the bus windows (fixed ones, and the BARs of its
// PCI function) whose accesses travel over the shared access ring.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "ipc/control.pb.h"
#include "ipc/legacy_device/access_ring.h"
#include "ipc/legacy_device/protocol.h"
#include "vhost-user/connection.h"
#include "vmm-core/bus.h"
#include "vmm-core/guest_memory.h"
#include "vmm-core/irq_router.h"
#include "vmm-core/pci/pci_bus.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class LegacyDeviceProxy {
 public:
  // Runs the handshake and checks the device against `attachment`; throws InputError
  // naming the device if it misbehaves or does not match.
  LegacyDeviceProxy(std::string name, UniqueFd socket, const ipc::LegacyAttachment& attachment,
                    const GuestMemory& memory, uint32_t poll_us, VmControl& vm);

  // Puts the device's fixed windows on the buses and its PCI function on `pci`, then
  // connects its interrupt lines (an INTx line needs the slot's GSI, known only now).
  void attach(Bus& pio, Bus& mmio, PciBus& pci, IrqRouter& router);

  const std::string& name() const { return name_; }
  int socket_fd() const { return connection_.fd(); }  // -1 while disconnected
  const legacy::DeviceInfo& info() const { return info_; }

  // Crash recovery, for a restartable device (LegacyAttachment.restartable): its process is
  // gone, and vCPUs that access it wait for the next one.
  bool restartable() const { return attachment_.restartable(); }
  // Returns why it went, if the core knows better than "its process exited".
  std::string disconnect();
  // The next process: it must be the same device; it gets the same state page (and so
  // resumes the dead one's state), guest memory, access ring and interrupt lines. Throws
  // naming the device if it misbehaves or differs.
  void reconnect(UniqueFd socket);
  // Accesses fail (ports float) until the next reconnect(): the device failed for good, or
  // the VM is stopping and vCPUs waiting for the device must return.
  void abandon(const std::string& why) { ring_->abandon(why); }

 private:
  class RemotePciFunction;
  // SET_OWNER, the device's info (checked by `check`), its state page, guest memory, the ring.
  void handshake(const std::function<void(const legacy::DeviceInfo&)>& check);
  void check_device_info() const;  // info_ against attachment_; throws InputError
  void send_irq(uint32_t index);
  std::shared_ptr<BusDevice> region(uint8_t index);
  void steer_by_msi(IrqRouter& router, int trigger, uint32_t intx_gsi, int resample);

  std::string name_;
  ipc::LegacyAttachment attachment_;
  const GuestMemory& memory_;
  uint32_t poll_us_;
  vhost_user::Connection connection_;
  legacy::DeviceInfo info_{};
  UniqueFd state_page_;  // when the device keeps state: the memfd every process of it gets
  struct IrqLine {
    UniqueFd trigger, resample;  // KVM keeps its own references
  };
  std::vector<IrqLine> irq_lines_;
  std::shared_ptr<legacy::AccessRingProducer> ring_;
  std::shared_ptr<RemotePciFunction> pci_function_;
  int64_t msi_gsi_ = -1;  // the MSI route of its INTx line while MSI is on
  VmControl& vm_;
};

}  // namespace bulkhead::core
