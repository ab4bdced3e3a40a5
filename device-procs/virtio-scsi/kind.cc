// virtio-scsi's entry in the device table: `--disk PATH[,ro]` (one LUN each, one process for
// all of them), and `bulkhead device virtio-scsi` for other VMMs.
#include <algorithm>

#include "common/error.h"
#include "device-procs/device_kind.h"
#include "launcher/disk_spec.h"

namespace bulkhead::devices {

namespace {

constexpr uint32_t kMaxQueues = 64;
constexpr uint32_t kMaxLuns = 256;
constexpr uint32_t kMaxPollUs = 1000;

class VirtioScsiInstance : public DeviceInstance {
 public:
  struct Disk {
    std::string path;
    bool read_only;
  };
  VirtioScsiInstance(std::vector<Disk> disks, uint32_t queues, uint32_t poll_us)
      : specs_(std::move(disks)), queues_(queues), poll_us_(poll_us) {}

  std::string name() const override { return "virtio-scsi0"; }

  void open(launcher::VmSandbox& sandbox) override {
    for (const Disk& spec : specs_) {
      disks_.push_back(launcher::open_disk(spec.path, spec.read_only));
      sandbox.label_image(disks_.back().fd.get(), disks_.back().read_only, disks_.back().path);
    }
  }

  ipc::DeviceConfig config(launcher::FdList& fds) const override {
    ipc::DeviceConfig config;
    ipc::VirtioScsiConfig* scsi = config.mutable_virtio_scsi();
    scsi->set_request_queues(queues_);
    scsi->set_poll_us(poll_us_);
    for (size_t i = 0; i < disks_.size(); ++i) {
      ipc::VirtioScsiDisk* d = scsi->add_disks();
      d->set_fd(fds.add(disks_[i].fd.get()));
      d->set_read_only(disks_[i].read_only);
      d->set_serial("BH" + std::to_string(i));
    }
    return config;
  }

  // It writes within its images and sizes small inflight memory files.
  launcher::RoleLimits limits() const override {
    uint64_t largest = 64ull << 20;
    for (const launcher::DiskImage& d : disks_) largest = std::max(largest, d.size);
    return {largest, 1024};
  }

  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    slot.mutable_virtio()->set_device_type(8);
    return slot;
  }

 private:
  std::vector<Disk> specs_;
  std::vector<launcher::DiskImage> disks_;
  uint32_t queues_, poll_us_;
};

class VirtioScsiKind : public DeviceKind {
 public:
  VirtioScsiKind() {
    name = "virtio-scsi";
    executable = "bulkhead-virtio-scsi";
    process_name = "bh-virtio-scsi";
    policy = "virtio-scsi";
    selinux_type = "bulkhead_virtio_scsi_t";
    summary = "virtio-scsi controller, one LUN per disk image (io_uring); virtio-pci over vhost-user";
    example = {"--disk", "{dir}/disk.img"};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--disk", "PATH[,ro]",
             "A disk image or block device, one LUN each on one virtio-scsi controller in its own process; ro: "
             "read-only (write-protected for the guest, shared with other VMs)",
             "bus=scsi", Mode::kParavirt, true, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext& vm) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    if (values.at(0).empty()) return instances;
    // A request queue per vCPU, as Linux's virtio_scsi uses them, up to 8.
    instances.push_back(disks(values.at(0), std::min(vm.cpus, 8u), vm.poll_us.value_or(200)));
    return instances;
  }
  std::vector<OptionSpec> standalone_options() const override {
    return {options().at(0),
            {"--queues", "N", "Request queues (1-64)", "", std::nullopt, false, "1"},
            {"--poll-us", "US", "How long the device keeps polling its rings after the last request (0-1000)", "",
             std::nullopt, false, "200"}};
  }
  std::unique_ptr<DeviceInstance> plan_standalone(const std::vector<OptionValues>& values) const override {
    if (values.at(0).empty()) throw InputError("virtio-scsi needs at least one --disk");
    uint32_t queues = number("--queues", values.at(1).at(0), 1, kMaxQueues);
    uint32_t poll_us = number("--poll-us", values.at(2).at(0), 0, kMaxPollUs);
    return disks(values.at(0), queues, poll_us);
  }

 private:
  static std::unique_ptr<DeviceInstance> disks(const OptionValues& specs, uint32_t queues, uint32_t poll_us) {
    if (specs.size() > kMaxLuns) throw InputError("at most " + std::to_string(kMaxLuns) + " disks on one virtio-scsi controller");
    std::vector<VirtioScsiInstance::Disk> disks;
    for (const std::string& spec : specs) {
      OptionItems items = parse_option_items("--disk", spec, {"ro", "bus"});
      if (items.first.empty()) throw InputError("--disk '" + spec + "' has no path");
      if (items.get("ro") && !items.get("ro")->empty()) throw InputError("--disk '" + spec + "': ro takes no value");
      disks.push_back({items.first, items.get("ro").has_value()});
    }
    return std::make_unique<VirtioScsiInstance>(std::move(disks), queues, poll_us);
  }
  static uint32_t number(const std::string& option, const std::string& text, uint32_t low, uint32_t high) {
    size_t used = 0;
    unsigned long v = 0;
    try {
      v = std::stoul(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != text.size() || text.empty() || v < low || v > high)
      throw InputError(option + " must be a number from " + std::to_string(low) + " to " + std::to_string(high));
    return static_cast<uint32_t>(v);
  }
};

}  // namespace

const DeviceKind& virtio_scsi_kind() {
  static const VirtioScsiKind kind;
  return kind;
}

}  // namespace bulkhead::devices
