// virtio-net's entry in the device table: `--net ...[,model=virtio]`, one process per NIC
// (and, for user-mode networking, its bh-slirp helper); `bulkhead device virtio-net` for
// other VMMs.
#include "common/error.h"
#include "device-procs/common/net_host.h"
#include "device-procs/device_kind.h"

namespace bulkhead::devices {

namespace {

constexpr uint32_t kMaxPairs = 16;

class VirtioNetInstance : public NicInstance {
 public:
  VirtioNetInstance(uint32_t index, NetSpec spec, uint32_t poll_us, std::string vm)
      : NicInstance("virtio-net" + std::to_string(index), std::move(spec), std::move(vm)), poll_us_(poll_us) {}

  ipc::DeviceConfig config(launcher::FdList& fds) const override {
    ipc::DeviceConfig config;
    ipc::VirtioNetConfig* net = config.mutable_virtio_net();
    net->set_mac(mac_bytes());
    net->set_queue_pairs(host_.spec().queues);
    net->set_poll_us(poll_us_);
    *net->mutable_backend() = host_.backend(fds);
    return config;
  }
  // It sizes its inflight memory file; it writes no other file.
  launcher::RoleLimits limits() const override { return {16ull << 20, 256}; }
  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    slot.mutable_virtio()->set_device_type(1);
    return slot;
  }

 private:
  uint32_t poll_us_;
};

NetSpec parse_virtio_net(const std::string& text) {
  NetSpec spec = parse_net(text, kMaxPairs);
  if (!spec.model.empty() && spec.model != "virtio")
    throw InputError("--net '" + text + "': model=" + spec.model + ": this is virtio-net (model=virtio)");
  return spec;
}

class VirtioNetKind : public DeviceKind {
 public:
  VirtioNetKind() {
    name = "virtio-net";
    executable = "bulkhead-virtio-net";
    process_name = "bh-virtio-net";
    policy = "virtio-net";
    selinux_type = "bulkhead_virtio_net_t";
    summary = "virtio-net NIC (MAC, link status, MTU, mergeable buffers, multiqueue; checksum and TSO offloads on a "
              "tap; user-mode networking through its bh-slirp helper); virtio-pci over vhost-user";
    example = {"--net", "user"};
    helper_roles = {&slirp_role()};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--net", "user[,hostfwd=tcp:ADDR:PORT-:PORT][,restrict=on]|tap=NAME|bridge=BRIDGE[,mac=MAC][,queues=N]",
             "A NIC: user-mode networking (guest 10.0.2.15 by DHCP, gateway 10.0.2.2, DNS 10.0.2.3), a tap that exists, "
             "or a new tap on a bridge; repeat for more NICs",
             "model=virtio", Mode::kParavirt, true, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext& vm) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    for (const std::string& text : values.at(0))
      instances.push_back(std::make_unique<VirtioNetInstance>(static_cast<uint32_t>(instances.size()),
                                                              parse_virtio_net(text), vm.poll_us.value_or(0), vm.vm_name));
    return instances;
  }
  std::vector<OptionSpec> standalone_options() const override {
    return {{"--net", "user[,...]|tap=NAME|bridge=BRIDGE[,mac=MAC][,queues=N]", "The NIC's host end, as for run", "",
             std::nullopt, false, ""},
            {"--poll-us", "US", "How long the device keeps polling its rings after the last request (0-1000)", "",
             std::nullopt, false, "0"}};
  }
  std::unique_ptr<DeviceInstance> plan_standalone(const std::vector<OptionValues>& values) const override {
    if (values.at(0).empty()) throw InputError("virtio-net needs --net");
    const std::string& poll = values.at(1).at(0);
    if (poll.empty() || poll.find_first_not_of("0123456789") != std::string::npos || std::stoul(poll) > 1000)
      throw InputError("--poll-us must be a number from 0 to 1000");
    return std::make_unique<VirtioNetInstance>(0, parse_virtio_net(values.at(0).at(0)), std::stoul(poll), "");
  }
};

}  // namespace

const DeviceKind& virtio_net_kind() {
  static const VirtioNetKind kind;
  return kind;
}

}  // namespace bulkhead::devices
