// virtio-balloon's entry in the device table: `--balloon on|target=SIZE[,...]`, one process.
// Balloon over vhost-user has no third-party front-end, so there is no standalone mode.
#include "common/error.h"
#include "device-procs/device_kind.h"
#include "launcher/options.h"

namespace bulkhead::devices {

namespace {

constexpr uint64_t kGuestPage = 4096;

struct BalloonSpec {
  uint32_t target_pages = 0;
  bool free_page_reporting = false, deflate_on_oom = false;
  uint32_t stats_interval_s = 0;
};

class BalloonInstance : public DeviceInstance {
 public:
  BalloonInstance(BalloonSpec spec, uint64_t host_page_size) : spec_(spec), host_page_size_(host_page_size) {}
  std::string name() const override { return "virtio-balloon0"; }
  void open(launcher::VmSandbox&) override {}
  ipc::DeviceConfig config(launcher::FdList&) const override {
    ipc::DeviceConfig config;
    ipc::VirtioBalloonConfig* balloon = config.mutable_virtio_balloon();
    balloon->set_target_pages(spec_.target_pages);
    balloon->set_free_page_reporting(spec_.free_page_reporting);
    balloon->set_deflate_on_oom(spec_.deflate_on_oom);
    balloon->set_stats_interval_s(spec_.stats_interval_s);
    balloon->set_host_page_size(host_page_size_);
    return config;
  }
  // It sizes its inflight memory file; it writes no other file.
  launcher::RoleLimits limits() const override { return {1ull << 20, 64}; }
  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    slot.mutable_virtio()->set_device_type(5);
    return slot;
  }

 private:
  BalloonSpec spec_;
  uint64_t host_page_size_;
};

bool parse_on_off(const std::string& text, const std::string& key, const std::string& value) {
  if (value == "on") return true;
  if (value == "off") return false;
  throw InputError("--balloon '" + text + "': " + key + " takes on or off, not '" + value + "'");
}

BalloonSpec parse_balloon(const std::string& text, const VmContext& vm) {
  // "on" alone, or key=value items only (the leading comma makes every item a key).
  std::string items = text == "on" ? "" : "," + text;
  OptionItems parsed =
      parse_option_items("--balloon", items, {"target", "free-page-reporting", "deflate-on-oom", "stats-interval"});
  BalloonSpec spec;
  for (const auto& [key, value] : parsed.items) {
    if (key == "target") {
      uint64_t keep;
      try {
        keep = launcher::parse_memory_size(value);
      } catch (const InputError& e) {
        throw InputError("--balloon '" + text + "': target: " + e.what());
      }
      if (keep == 0 || keep > vm.memory_bytes || keep % kGuestPage)
        throw InputError("--balloon '" + text + "': target=" + value +
                         " must be a multiple of 4K, more than 0 and at most the VM's memory (" +
                         std::to_string(vm.memory_bytes >> 20) + "M)");
      spec.target_pages = static_cast<uint32_t>((vm.memory_bytes - keep) / kGuestPage);
    } else if (key == "stats-interval") {
      if (value.empty() || value.size() > 5 || value.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(value) > 86400)
        throw InputError("--balloon '" + text + "': stats-interval takes seconds, from 0 to 86400");
      spec.stats_interval_s = static_cast<uint32_t>(std::stoul(value));
    } else {
      (key == "free-page-reporting" ? spec.free_page_reporting : spec.deflate_on_oom) = parse_on_off(text, key, value);
    }
  }
  return spec;
}

class BalloonKind : public DeviceKind {
 public:
  BalloonKind() {
    name = "virtio-balloon";
    executable = "bulkhead-virtio-balloon";
    process_name = "bh-balloon";
    policy = "virtio-balloon";
    selinux_type = "bulkhead_virtio_balloon_t";
    summary = "virtio-balloon (inflate and deflate, statistics, free page reporting, deflate on OOM): pages given "
              "back are punched out of guest RAM; virtio-pci over vhost-user";
    example = {"--balloon", "target=48M,free-page-reporting=on"};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--balloon", "on|target=SIZE[,free-page-reporting=on][,deflate-on-oom=on][,stats-interval=SECONDS]",
             "A memory balloon: target is the memory the guest is to keep (as QEMU's `balloon` command), the rest "
             "goes back to the host; statistics are logged every stats-interval seconds",
             "", std::nullopt, false, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext& vm) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    if (values.at(0).empty()) return instances;
    instances.push_back(std::make_unique<BalloonInstance>(parse_balloon(values.at(0).at(0), vm), vm.memory_page_size));
    return instances;
  }
};

}  // namespace

const DeviceKind& virtio_balloon_kind() {
  static const BalloonKind kind;
  return kind;
}

}  // namespace bulkhead::devices
