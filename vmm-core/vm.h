// One VM: KVM objects, guest RAM, buses with their devices, and the vCPUs.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "common/unique_fd.h"
#include "ipc/control.pb.h"
#include "ipc/control_channel.h"
#include "vmm-core/boot/acpi.h"
#include "vmm-core/bus.h"
#include "vmm-core/devices/acpi_pm.h"
#include "vmm-core/eventfd_monitor.h"
#include "vmm-core/guest_memory.h"
#include "vmm-core/irq_router.h"
#include "vmm-core/kvm.h"
#include "vmm-core/legacy_device_proxy.h"
#include "vmm-core/pci/pci_bus.h"
#include "vmm-core/vcpu.h"
#include "vmm-core/virtio/vhost_user_pci_backend.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class Vm {
 public:
  // Builds the whole VM from the launcher's configuration and descriptors; throws
  // InputError for an unusable configuration or image.
  Vm(const ipc::CoreConfig& config, std::vector<UniqueFd>& fds);
  ~Vm();

  // Runs until the guest or the VMM ends the VM, or the supervisor's `control` hangs up.
  // A virtio device (or a restartable legacy device) whose process dies is reported to the
  // supervisor, which restarts it and sends the new connection here (ipc CoreRequest); the
  // guest waits meanwhile.
  ipc::VmStopped run(ipc::ControlChannel& control);

 private:
  void add_system_devices();
  // Connects every device slot, in order (the order decides PCI slots), and returns what the
  // ACPI tables describe about them.
  std::vector<AcpiIsaDevice> connect_devices(const ipc::CoreConfig& config, std::vector<UniqueFd>& fds);
  void connect_device(const ipc::DeviceSlot& slot, UniqueFd socket, uint32_t poll_us);
  void on_supervisor_request(ipc::ControlChannel& control);
  // Tells the supervisor that device `name` (of connection `generation`) is gone, so that it
  // restarts it.
  void report_lost(ipc::ControlChannel& control, const std::string& name, uint32_t generation, const std::string& why);
  void on_reconnect_or_failure(ipc::ControlChannel& control, const ipc::CoreRequest& request, std::vector<UniqueFd>& fds);
  // `bulkhead ctl balloon` and `balloon-stats`: sets the balloon's target if asked, and
  // returns its state (or why not).
  ipc::BalloonState balloon(const ipc::BalloonRequest& request);
  // `bulkhead ctl pause` and `resume`: the vCPUs and the guest's clock stop and go on.
  void pause();
  void resume();

  struct VirtioSlot {
    std::unique_ptr<VhostUserPciBackend> backend;
    std::shared_ptr<VirtioPciDevice> pci;
    uint32_t generation = 0;  // reconnects so far
  };
  struct LegacySlot {
    std::unique_ptr<LegacyDeviceProxy> proxy;
    uint32_t generation = 0;  // reconnects so far
  };

  // Declaration order is destruction order reversed: devices on the buses may call into the
  // router, the monitor and their vhost-user links until they are gone.
  VmControl control_;
  Kvm kvm_;
  UniqueFd vm_fd_;
  std::vector<uint32_t> vcpu_host_cpus_;  // --vcpu-pin, one per vCPU, or empty
  std::optional<uint64_t> paused_clock_;  // the guest's kvmclock when it was paused
  GuestMemory memory_;
  IrqRouter router_;
  EventfdMonitor monitor_;
  std::vector<VirtioSlot> virtio_devices_;
  Bus pio_{"port I/O bus"};
  Bus mmio_{"MMIO bus"};
  std::shared_ptr<PciBus> pci_;
  std::shared_ptr<AcpiPm> acpi_pm_;
  std::vector<LegacySlot> legacy_devices_;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;
};

}  // namespace bulkhead::core
