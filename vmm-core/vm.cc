#include "vmm-core/vm.h"

#include <poll.h>

#include "common/error.h"
#include "common/log.h"
#include "ipc/control_channel.h"
#include "vmm-core/boot/acpi.h"
#include "vmm-core/boot/kernel_image.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/boot/memory_map.h"
#include "vmm-core/devices/debug_exit.h"
#include "vmm-core/devices/system_control.h"

namespace bulkhead::core {

namespace {

// KVM's private pages for VMX real-mode support, inside the 32-bit hole, clear of guest RAM.
constexpr uint64_t kIdentityMapAddr = 0xfeffc000;
constexpr uint64_t kTssAddr = 0xfeffd000;
constexpr uint32_t kMaxCpus = 254;  // one MADT xAPIC entry each, IDs below the broadcast ID

UniqueFd take_required_fd(std::vector<UniqueFd>& fds, int index, const char* what) {
  UniqueFd fd = ipc::take_fd(fds, index, what);
  if (!fd) throw InputError(std::string("core configuration lacks ") + what);
  return fd;
}

uint64_t validated_memory(uint64_t bytes) {
  if (bytes < kMinimumMemory) throw InputError("memory must be at least 16 MiB");
  return bytes;
}

}  // namespace

Vm::Vm(const ipc::CoreConfig& config, std::vector<UniqueFd>& fds)
    : kvm_(take_required_fd(fds, config.kvm_fd(), "/dev/kvm")),
      vm_fd_(kvm_ioctl(kvm_.fd(), KVM_CREATE_VM, 0ul, "KVM_CREATE_VM")),
      memory_(validated_memory(config.memory_bytes())),
      router_(vm_fd_.get()) {
  uint32_t cpus = config.cpus();
  if (cpus == 0 || cpus > kMaxCpus) throw InputError("cpus must be between 1 and " + std::to_string(kMaxCpus));
  int kvm_max = kvm_.check_extension(KVM_CAP_MAX_VCPUS);
  if (kvm_max > 0 && cpus > static_cast<uint32_t>(kvm_max))
    throw InputError("this KVM supports at most " + std::to_string(kvm_max) + " vCPUs");
  for (auto [cap, name] : {std::pair{KVM_CAP_IRQCHIP, "an in-kernel irqchip"}, {KVM_CAP_IRQFD, "irqfd"},
                           {KVM_CAP_PIT2, "an in-kernel PIT"}, {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"},
                           {KVM_CAP_SET_TSS_ADDR, "KVM_SET_TSS_ADDR"}, {KVM_CAP_EXT_CPUID, "KVM_GET_SUPPORTED_CPUID"},
                           {KVM_CAP_IRQ_ROUTING, "IRQ routing"}, {KVM_CAP_IOEVENTFD, "ioeventfd"},
                           {KVM_CAP_SIGNAL_MSI, "KVM_SIGNAL_MSI"}})
    kvm_.require_extension(cap, name);

  kvm_ioctl(vm_fd_.get(), KVM_SET_TSS_ADDR, kTssAddr, "KVM_SET_TSS_ADDR");
  uint64_t identity_map = kIdentityMapAddr;
  kvm_ioctl(vm_fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity_map, "KVM_SET_IDENTITY_MAP_ADDR");
  kvm_ioctl(vm_fd_.get(), KVM_CREATE_IRQCHIP, 0ul, "KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  kvm_ioctl(vm_fd_.get(), KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

  uint32_t slot = 0;
  for (const RamRegion& region : memory_.regions()) {
    kvm_userspace_memory_region mr{};
    mr.slot = slot++;
    mr.guest_phys_addr = region.guest_address;
    mr.memory_size = region.size;
    mr.userspace_addr = reinterpret_cast<uint64_t>(region.host);
    kvm_ioctl(vm_fd_.get(), KVM_SET_USER_MEMORY_REGION, &mr, "KVM_SET_USER_MEMORY_REGION");
  }

  add_system_devices();
  connect_legacy_devices(config, fds);
  connect_virtio_devices(config, fds);

  memory_.write(kBootGdtAddr, {reinterpret_cast<const uint8_t*>(kBootGdt), sizeof kBootGdt}, "boot GDT");
  UniqueFd kernel = take_required_fd(fds, config.kernel_fd(), "the kernel image");
  UniqueFd initrd = ipc::take_fd(fds, config.initrd_fd(), "the initrd");
  BootInputs inputs{kernel.get(), initrd.get(), config.cmdline(), build_memory_map(memory_),
                    write_acpi_tables(memory_, cpus)};
  BootEntry entry = load_kernel(inputs, memory_);

  std::vector<kvm_cpuid_entry2> supported = kvm_.supported_cpuid();
  std::vector<uint32_t> msrs = kvm_.msr_index_list();
  for (uint32_t i = 0; i < cpus; ++i) vcpus_.push_back(std::make_unique<Vcpu>(kvm_, vm_fd_.get(), i, cpus, supported, msrs));
  vcpus_[0]->set_boot_state(entry);
}

Vm::~Vm() {
  for (auto& vcpu : vcpus_) vcpu->kick();
  for (auto& vcpu : vcpus_) vcpu->join();
  monitor_.stop();  // no interrupt callback may run into a device being destroyed
}

void Vm::add_system_devices() {
  pio_.add(kDebugExitPort, kDebugExitPorts, std::make_shared<DebugExit>(control_), "debug-exit");
  pio_.add(kKeyboardControllerPort, 1, std::make_shared<KeyboardControllerReset>(control_), "keyboard-controller reset");
  pio_.add(kSleepControlPort, 2, std::make_shared<SleepControl>(control_), "ACPI sleep control");
  pci_ = std::make_shared<PciBus>(mmio_, std::make_shared<ResetControl>(control_));
  pio_.add(PciBus::kConfigAddressPort, PciBus::kConfigPorts, pci_, "PCI configuration");
}

void Vm::connect_virtio_devices(const ipc::CoreConfig& config, std::vector<UniqueFd>& fds) {
  for (const ipc::VirtioDeviceSlot& slot : config.virtio_devices()) {
    UniqueFd socket = take_required_fd(fds, slot.socket_fd(), "a vhost-user socket");
    VirtioType type = slot.type() == ipc::VirtioDeviceSlot::BLOCK ? VirtioType::kBlock
                      : slot.type() == ipc::VirtioDeviceSlot::NET ? VirtioType::kNet
                                                                  : VirtioType::kScsi;
    auto device = std::make_unique<VhostUserDevice>(slot.name(), type, std::move(socket), memory_);
    pci_->add(std::make_shared<VirtioPciDevice>(*device, vm_fd_.get(), router_, monitor_));
    virtio_devices_.push_back(std::move(device));
  }
}

void Vm::connect_legacy_devices(const ipc::CoreConfig& config, std::vector<UniqueFd>& fds) {
  for (const ipc::LegacyDeviceSlot& slot : config.legacy_devices()) {
    UniqueFd socket = take_required_fd(fds, slot.socket_fd(), "a legacy device socket");
    auto proxy = std::make_unique<LegacyDeviceProxy>(slot.name(), std::move(socket), legacy::DeviceKind::kSerial16550,
                                                     vm_fd_.get(), std::vector<uint32_t>{slot.gsi()},
                                                     config.device_poll_us(), control_);
    if (proxy->info().region_size[0] < slot.io_size())
      throw InputError("device " + slot.name() + " has fewer registers than its I/O window");
    pio_.add(slot.io_base(), slot.io_size(), proxy->region(0), slot.name());
    legacy_devices_.push_back(std::move(proxy));
  }
}

ipc::VmStopped Vm::run(int control_fd) {
  install_vcpu_kick_handler();
  control_.set_kick([this] {
    for (auto& vcpu : vcpus_) vcpu->kick();
  });
  for (auto& vcpu : vcpus_) vcpu->start(pio_, mmio_, control_);

  std::vector<pollfd> fds = {{control_.stop_fd(), POLLIN, 0}, {control_fd, POLLRDHUP, 0}};
  std::vector<std::string> names;
  for (auto& device : legacy_devices_) {
    fds.push_back({device->socket_fd(), POLLRDHUP, 0});
    names.push_back(device->name());
  }
  for (auto& device : virtio_devices_) {
    fds.push_back({device->socket_fd(), POLLRDHUP, 0});
    names.push_back(device->name());
  }
  while (!control_.stopping()) {
    // poll() on descriptors this object owns, in a vector sized to match.
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    if (fds[1].revents) control_.request_stop(ipc::VmStopped::VMM_ERROR, 1, "the launcher went away");
    for (size_t i = 2; i < fds.size(); ++i)
      if (fds[i].revents)
        control_.request_stop(ipc::VmStopped::VMM_ERROR, 1,
                              "device " + names[i - 2] + " hung up (its process exited)");
  }
  for (auto& vcpu : vcpus_) vcpu->join();
  return control_.result();
}

}  // namespace bulkhead::core
