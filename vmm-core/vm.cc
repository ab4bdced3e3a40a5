#include "vmm-core/vm.h"

#include <linux/kvm.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "ipc/control_channel.h"
#include "vmm-core/boot/acpi.h"
#include "vmm-core/boot/kernel_image.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/boot/memory_map.h"
#include "vmm-core/devices/debug_exit.h"
#include "vmm-core/devices/system_control.h"
#include "vmm-core/platform.h"

namespace bulkhead::core {

namespace {

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
      memory_(validated_memory(config.memory_bytes()), config.hugepages()),
      router_(vm_fd_.get()) {
  uint32_t cpus = config.cpus();
  if (cpus == 0 || cpus > kMaxCpus) throw InputError("cpus must be between 1 and " + std::to_string(kMaxCpus));
  int kvm_max = kvm_.check_extension(KVM_CAP_MAX_VCPUS);
  if (kvm_max > 0 && cpus > static_cast<uint32_t>(kvm_max))
    throw InputError("this KVM supports at most " + std::to_string(kvm_max) + " vCPUs");
  vcpu_host_cpus_.assign(config.vcpu_host_cpus().begin(), config.vcpu_host_cpus().end());
  if (!vcpu_host_cpus_.empty() && vcpu_host_cpus_.size() != cpus)
    throw InputError("vcpu_host_cpus names " + std::to_string(vcpu_host_cpus_.size()) + " host CPUs for " +
                     std::to_string(cpus) + " vCPUs");
  for (uint32_t cpu : vcpu_host_cpus_)
    if (cpu >= CPU_SETSIZE) throw InputError("host CPU " + std::to_string(cpu) + " is beyond CPU_SETSIZE");
  for (auto [cap, name] : {std::pair{KVM_CAP_IRQCHIP, "an in-kernel irqchip"}, {KVM_CAP_IRQFD, "irqfd"},
                           {KVM_CAP_PIT2, "an in-kernel PIT"}, {KVM_CAP_IMMEDIATE_EXIT, "immediate exit"},
                           {KVM_CAP_SET_TSS_ADDR, "KVM_SET_TSS_ADDR"}, {KVM_CAP_EXT_CPUID, "KVM_GET_SUPPORTED_CPUID"},
                           {KVM_CAP_IRQ_ROUTING, "IRQ routing"}, {KVM_CAP_IOEVENTFD, "ioeventfd"},
                           {KVM_CAP_SIGNAL_MSI, "KVM_SIGNAL_MSI"}})
    kvm_.require_extension(cap, name);

  kvm_ioctl(vm_fd_.get(), KVM_SET_TSS_ADDR, platform::kKvmTssAddr, "KVM_SET_TSS_ADDR");
  uint64_t identity_map = platform::kKvmIdentityMapAddr;
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
  AcpiPlatform acpi{cpus, connect_devices(config, fds)};

  memory_.write(kBootGdtAddr, {reinterpret_cast<const uint8_t*>(kBootGdt), sizeof kBootGdt}, "boot GDT");
  UniqueFd kernel = take_required_fd(fds, config.kernel_fd(), "the kernel image");
  UniqueFd initrd = ipc::take_fd(fds, config.initrd_fd(), "the initrd");
  BootInputs inputs{kernel.get(), initrd.get(), config.cmdline(), build_memory_map(memory_),
                    write_acpi_tables(memory_, acpi)};
  BootEntry entry = load_kernel(inputs, memory_);

  std::vector<kvm_cpuid_entry2> supported = kvm_.supported_cpuid();
  std::vector<uint32_t> msrs = kvm_.msr_index_list();
  CpuModel model{config.cpu_model() == ipc::CoreConfig::HOST};
  for (uint32_t i = 0; i < cpus; ++i)
    vcpus_.push_back(std::make_unique<Vcpu>(kvm_, vm_fd_.get(), i, cpus, supported, model, msrs));
  vcpus_[0]->set_boot_state(entry);
}

Vm::~Vm() {
  // Without a stop (an exception left run()), kicked or paused vCPUs would only run again.
  control_.request_stop(ipc::VmStopped::VMM_ERROR, 1, "the core is ending");
  for (auto& device : legacy_devices_) device.proxy->abandon("the core is ending");
  for (auto& vcpu : vcpus_) vcpu->kick();
  for (auto& vcpu : vcpus_) vcpu->join();
  monitor_.stop();  // no interrupt callback may run into a device being destroyed
}

void Vm::add_system_devices() {
  namespace pf = platform;
  pio_.add(pf::kDebugExitPort, pf::kDebugExitPorts, std::make_shared<DebugExit>(control_), "debug-exit");
  pio_.add(pf::kKeyboardControllerPort, 1, std::make_shared<KeyboardControllerReset>(control_), "keyboard-controller reset");
  acpi_pm_ = std::make_shared<AcpiPm>(control_, [this](bool level) { router_.set_line(pf::kSciIrq, level); });
  pio_.add(pf::kPmBase, pf::kPmSize, acpi_pm_, "ACPI PM registers");
  pci_ = std::make_shared<PciBus>(pio_, mmio_, std::make_shared<ResetControl>(control_));
  pio_.add(pf::kPciConfigPort, pf::kPciConfigPorts, pci_, "PCI configuration");
}

void Vm::connect_device(const ipc::DeviceSlot& slot, UniqueFd socket, uint32_t poll_us) {
  if (slot.has_virtio()) {
    auto device = std::make_unique<VhostUserPciBackend>(slot.name(), static_cast<uint16_t>(slot.virtio().device_type()),
                                                        std::move(socket), memory_);
    auto pci = std::make_shared<VirtioPciDevice>(*device, vm_fd_.get(), router_, monitor_);
    pci_->add(pci);
    virtio_devices_.push_back({std::move(device), std::move(pci)});
  } else if (slot.has_legacy()) {
    auto proxy = std::make_unique<LegacyDeviceProxy>(slot.name(), std::move(socket), slot.legacy(), memory_, poll_us,
                                                     control_);
    proxy->attach(pio_, mmio_, *pci_, router_);
    legacy_devices_.push_back({std::move(proxy)});
  } else {
    throw InputError("it has no attachment");
  }
}

std::vector<AcpiIsaDevice> Vm::connect_devices(const ipc::CoreConfig& config, std::vector<UniqueFd>& fds) {
  std::vector<AcpiIsaDevice> isa;
  for (const ipc::DeviceSlot& slot : config.devices()) {
    try {
      connect_device(slot, take_required_fd(fds, slot.socket_fd(), "a device socket"), config.device_poll_us());
    } catch (const InputError& e) {
      throw InputError("device " + slot.name() + ": " + e.what());
    } catch (const std::exception& e) {
      throw std::runtime_error("device " + slot.name() + ": " + e.what());
    }
    if (slot.has_acpi()) {
      AcpiIsaDevice d{slot.acpi().name(), slot.acpi().hid(), slot.acpi().uid(), {}, {}};
      for (const auto& w : slot.legacy().windows())
        if (w.space() == ipc::LegacyAttachment::Window::PORT_IO && w.base() + w.size() <= 0x10000 && w.size() < 256)
          d.ports.push_back({static_cast<uint16_t>(w.base()), static_cast<uint8_t>(w.size())});
      for (const auto& irq : slot.legacy().irqs())
        if (!irq.pci_intx() && irq.gsi() < 16) d.irqs.push_back(static_cast<uint8_t>(irq.gsi()));
      isa.push_back(std::move(d));
    }
  }
  return isa;
}

void Vm::report_lost(ipc::ControlChannel& control, const std::string& name, uint32_t generation, const std::string& why) {
  spdlog::warn("device {} was lost: {}; waiting for its restart", name,
               why.empty() ? "its process exited or closed the connection" : why);
  ipc::RoleEvent event;
  ipc::DeviceLost* lost = event.mutable_device_lost();
  lost->set_device(name);
  lost->set_why(why);
  lost->set_generation(generation);
  control.send(event);
}

void Vm::pause() {
  if (control_.paused()) return;
  control_.pause(vcpus_.size());
  // The guest's clock stops with its vCPUs (as QEMU's does), so a resumed guest does not see
  // the pause as a lost tick or a soft lockup.
  kvm_clock_data clock{};
  // KVM_GET_CLOCK into a local; the VM fd is ours.
  if (::ioctl(vm_fd_.get(), KVM_GET_CLOCK, &clock) == 0) paused_clock_ = clock.clock;
  else spdlog::warn("the guest's clock keeps running while paused: KVM_GET_CLOCK: {}", std::strerror(errno));
}

void Vm::resume() {
  if (!control_.paused()) return;
  if (paused_clock_) {
    kvm_clock_data clock{};
    clock.clock = *paused_clock_;
    // KVM_SET_CLOCK from a local; the VM fd is ours and its vCPUs are parked.
    if (::ioctl(vm_fd_.get(), KVM_SET_CLOCK, &clock) != 0)
      spdlog::warn("the guest's clock jumps by the pause: KVM_SET_CLOCK: {}", std::strerror(errno));
    paused_clock_.reset();
  }
  control_.resume();
}

void Vm::on_supervisor_request(ipc::ControlChannel& control) {
  ipc::CoreRequest request;
  std::vector<UniqueFd> fds;
  if (!control.receive(request, fds)) {
    control_.request_stop(ipc::VmStopped::VMM_ERROR, 1, "the launcher went away");
    return;
  }
  if (request.power_button()) {
    acpi_pm_->press_power_button();
    return;
  }
  if (request.has_balloon()) {
    ipc::RoleEvent event;
    *event.mutable_balloon() = balloon(request.balloon());
    control.send(event);
    return;
  }
  if (request.has_pause() || request.has_resume()) {
    ipc::RoleEvent event;
    if (request.has_pause()) {
      pause();
      event.set_paused(true);
    } else {
      resume();
      event.set_resumed(true);
    }
    control.send(event);
    return;
  }
  on_reconnect_or_failure(control, request, fds);
}

ipc::BalloonState Vm::balloon(const ipc::BalloonRequest& request) {
  // virtio 1.x 5.5.4: the device's num_pages (what the balloon is to hold), then the driver's
  // actual, both in 4 KiB pages.
  constexpr uint32_t kNumPages = 0, kActual = 4;
  constexpr uint64_t kPage = 4096;
  ipc::BalloonState state;
  auto device = std::find_if(virtio_devices_.begin(), virtio_devices_.end(),
                             [](const VirtioSlot& d) { return d.backend->device_type() == 5; });
  if (device == virtio_devices_.end()) {
    state.set_error("this VM has no balloon (bulkhead run --balloon on)");
    return state;
  }
  uint64_t ram = memory_.size();
  if (request.has_target_bytes()) {
    uint64_t keep = request.target_bytes();
    if (keep == 0 || keep > ram || keep % kPage) {
      state.set_error("the balloon's target must be a multiple of 4K, more than 0 and at most the VM's memory (" +
                      std::to_string(ram >> 20) + "M)");
      return state;
    }
    auto pages = static_cast<uint32_t>((ram - keep) / kPage);  // RAM is far below 16 TiB
    uint8_t bytes[4];
    std::memcpy(bytes, &pages, 4);  // virtio's configuration is little-endian, as x86
    device->backend->set_device_config(kNumPages, bytes);
    device->pci->config_changed(false);
    spdlog::info("the balloon's target is now {} MiB for the guest ({} MiB in the balloon)", keep >> 20,
                 uint64_t{pages} * kPage >> 20);
  }
  uint8_t config[8] = {};
  device->backend->read_config(kNumPages, config);
  uint32_t num_pages, actual;
  std::memcpy(&num_pages, config + kNumPages, 4);
  std::memcpy(&actual, config + kActual, 4);
  state.set_device(device->backend->name());
  state.set_memory_bytes(ram);
  state.set_target_bytes(ram - std::min<uint64_t>(ram, num_pages * kPage));
  // A hostile driver may claim any actual: what it keeps is at least nothing.
  state.set_guest_bytes(ram - std::min<uint64_t>(ram, actual * kPage));
  return state;
}

void Vm::on_reconnect_or_failure(ipc::ControlChannel& control, const ipc::CoreRequest& request,
                                 std::vector<UniqueFd>& fds) {
  const std::string& name = request.has_reconnect() ? request.reconnect().device() : request.device_failed();
  auto virtio = std::find_if(virtio_devices_.begin(), virtio_devices_.end(),
                             [&](const VirtioSlot& d) { return d.backend->name() == name; });
  auto legacy = std::find_if(legacy_devices_.begin(), legacy_devices_.end(),
                             [&](const LegacySlot& d) { return d.proxy->name() == name && d.proxy->restartable(); });
  if (virtio == virtio_devices_.end() && legacy == legacy_devices_.end()) {
    spdlog::warn("the supervisor named an unknown device '{}'", name);
    return;
  }
  if (request.has_device_failed()) {
    if (virtio != virtio_devices_.end()) {
      spdlog::error("device {} stays down; its driver is told to reset it", name);
      virtio->pci->config_changed(true);
    } else {
      spdlog::error("device {} stays down; its registers read as if it were absent", name);
      legacy->proxy->abandon("the device failed");
    }
    return;
  }
  uint32_t& generation = virtio != virtio_devices_.end() ? virtio->generation : legacy->generation;
  generation = request.reconnect().generation();
  try {
    UniqueFd socket = ipc::take_fd(fds, request.reconnect().socket_fd(), "a device socket");
    if (virtio != virtio_devices_.end()) virtio->backend->reconnect(std::move(socket));
    else legacy->proxy->reconnect(std::move(socket));
    spdlog::info("device {} reconnected", name);
  } catch (const std::exception& e) {
    if (virtio != virtio_devices_.end()) virtio->backend->disconnect();
    else legacy->proxy->disconnect();
    report_lost(control, name, generation, std::string("its restart failed: ") + e.what());
  }
}

ipc::VmStopped Vm::run(ipc::ControlChannel& control) {
  install_vcpu_kick_handler();
  control_.set_kick([this] {
    for (auto& vcpu : vcpus_) vcpu->kick();
  });
  for (size_t i = 0; i < vcpus_.size(); ++i)
    vcpus_[i]->start(pio_, mmio_, control_,
                     i < vcpu_host_cpus_.size() ? std::optional<uint32_t>(vcpu_host_cpus_[i]) : std::nullopt);

  while (!control_.stopping()) {
    // Rebuilt each time: a virtio device's socket changes when its process is restarted.
    std::vector<pollfd> fds = {{control_.stop_fd(), POLLIN, 0}, {control.fd(), POLLIN | POLLRDHUP, 0}};
    for (auto& device : legacy_devices_) fds.push_back({device.proxy->socket_fd(), POLLRDHUP, 0});
    size_t first_virtio = fds.size();
    for (auto& device : virtio_devices_) fds.push_back({device.backend->socket_fd(), POLLRDHUP, 0});
    // poll() on descriptors this object owns, in a vector sized to match (-1 entries: down).
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    try {
      if (fds[1].revents & POLLIN) on_supervisor_request(control);
      else if (fds[1].revents) control_.request_stop(ipc::VmStopped::VMM_ERROR, 1, "the launcher went away");
      for (size_t i = 2; i < first_virtio; ++i) {
        LegacySlot& device = legacy_devices_[i - 2];
        if (!fds[i].revents || fds[i].fd != device.proxy->socket_fd()) continue;
        if (!device.proxy->restartable()) {
          control_.request_stop(ipc::VmStopped::VMM_ERROR, 1,
                                "device " + device.proxy->name() + " hung up (its process exited)");
          continue;
        }
        report_lost(control, device.proxy->name(), device.generation, device.proxy->disconnect());
      }
      for (size_t i = first_virtio; i < fds.size(); ++i) {
        VirtioSlot& device = virtio_devices_[i - first_virtio];
        if (fds[i].revents && fds[i].fd == device.backend->socket_fd())
          report_lost(control, device.backend->name(), device.generation, device.backend->disconnect());
      }
    } catch (const std::exception& e) {
      control_.request_stop(ipc::VmStopped::VMM_ERROR, 1, std::string("talking to the supervisor: ") + e.what());
    }
  }
  // A vCPU waiting for a restartable device that is down returns now.
  for (auto& device : legacy_devices_) device.proxy->abandon("the VM is stopping");
  for (auto& vcpu : vcpus_) vcpu->join();
  return control_.result();
}

}  // namespace bulkhead::core
