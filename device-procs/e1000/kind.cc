// The e1000's entry in the device table: `--net ...,model=e1000`, and every `--net` of a VM in
// `--mode full`. One process per NIC (and, for user-mode networking, its bh-slirp helper).
#include "common/error.h"
#include "device-procs/common/net_host.h"
#include "device-procs/device_kind.h"

namespace bulkhead::devices {

namespace {

class E1000Instance : public NicInstance {
 public:
  E1000Instance(uint32_t index, NetSpec spec, std::string vm)
      : NicInstance("e1000-" + std::to_string(index), std::move(spec), std::move(vm)) {}

  ipc::DeviceConfig config(launcher::FdList& fds) const override {
    ipc::DeviceConfig config;
    ipc::E1000Config* nic = config.mutable_e1000();
    nic->set_mac(mac_bytes());
    *nic->mutable_backend() = host_.backend(fds);
    return config;
  }
  // It writes no file; it holds its sockets, ring and interrupt line.
  launcher::RoleLimits limits() const override { return {0, 64}; }
  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    ipc::LegacyAttachment* legacy = slot.mutable_legacy();
    legacy->set_kind("e1000");
    legacy->add_irqs()->set_pci_intx(true);
    return slot;
  }
};

class E1000Kind : public DeviceKind {
 public:
  E1000Kind() {
    name = "e1000";
    executable = "bulkhead-e1000";
    process_name = "bh-e1000";
    policy = "e1000";
    selinux_type = "bulkhead_e1000_t";
    summary = "Intel 82540EM gigabit NIC (8086:100E: EEPROM, M88 PHY, checksum and TSO offloads done in software, "
              "VLAN, filters, statistics, INTx with throttling) on the same host ends as virtio-net; legacy device "
              "protocol";
    example = {"--net", "user,model=e1000"};
    helper_roles = {&slirp_role()};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--net", "user[,hostfwd=...][,restrict=on]|tap=NAME|bridge=BRIDGE[,mac=MAC]",
             "A NIC, as for virtio-net; an Intel e1000 for guests without virtio drivers", "model=e1000", Mode::kFull,
             true, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext& vm) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    for (const std::string& text : values.at(0))
      instances.push_back(std::make_unique<E1000Instance>(static_cast<uint32_t>(instances.size()), parse_net(text, 1),
                                                          vm.vm_name));
    return instances;
  }
};

}  // namespace

const DeviceKind& e1000_kind() {
  static const E1000Kind kind;
  return kind;
}

}  // namespace bulkhead::devices
