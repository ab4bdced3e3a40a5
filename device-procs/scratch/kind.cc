// The scratch device's entry in the device table (test builds only): `--scratch on`.
#include "common/error.h"
#include "device-procs/device_kind.h"

namespace bulkhead::devices {

namespace {

constexpr uint16_t kPortBase = 0x520;  // a free ISA range
constexpr uint32_t kIsaIrq = 10;

class ScratchInstance : public DeviceInstance {
 public:
  std::string name() const override { return "scratch0"; }
  void open(launcher::VmSandbox&) override {}
  ipc::DeviceConfig config(launcher::FdList&) const override {
    ipc::DeviceConfig config;
    config.mutable_scratch();
    return config;
  }
  launcher::RoleLimits limits() const override { return {0, 64}; }
  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    ipc::LegacyAttachment* legacy = slot.mutable_legacy();
    legacy->set_kind("scratch");
    ipc::LegacyAttachment::Window* w = legacy->add_windows();
    w->set_space(ipc::LegacyAttachment::Window::PORT_IO);
    w->set_base(kPortBase);
    w->set_size(4);
    w->set_region(2);
    legacy->add_irqs()->set_pci_intx(true);
    legacy->add_irqs()->set_gsi(kIsaIrq);
    return slot;
  }
};

class ScratchKind : public DeviceKind {
 public:
  ScratchKind() {
    name = "scratch";
    executable = "bulkhead-scratch";
    process_name = "bh-scratch";
    policy = "scratch";
    selinux_type = "bulkhead_scratch_t";
    summary = "test builds only: a PCI function with registers, a FIFO, a fixed port, config space, INTx, "
              "ISA IRQ 10 and DMA (device-procs/scratch); legacy device protocol";
    example = {"--scratch", "on"};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--scratch", "on", "Test builds only: add the scratch device that the test guest's scratch scenario drives",
             "", std::nullopt, false, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext&) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    if (values.at(0).empty()) return instances;
    if (values.at(0).at(0) != "on") throw InputError("--scratch takes only 'on'");
    instances.push_back(std::make_unique<ScratchInstance>());
    return instances;
  }
};

}  // namespace

const DeviceKind& scratch_kind() {
  static const ScratchKind kind;
  return kind;
}

}  // namespace bulkhead::devices
