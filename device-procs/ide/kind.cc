// The IDE controller's entry in the device table: `--disk PATH[,ro],bus=ide` (and every
// `--disk` of a VM in `--mode full`) and `--cdrom ISO`, in either mode. One process for all
// of them. Disks take the drive positions in order (primary master, primary slave, secondary
// master, secondary slave) so that Linux names them /dev/sda, /dev/sdb... with no gap; the
// CD-ROM takes the next free position.
#include <algorithm>

#include "common/error.h"
#include "device-procs/device_kind.h"
#include "launcher/disk_spec.h"

namespace bulkhead::devices {

namespace {

constexpr uint32_t kDrives = 4;
constexpr uint64_t kIsaIrqPrimary = 14, kIsaIrqSecondary = 15;

class IdeInstance : public DeviceInstance {
 public:
  struct Drive {
    std::string path;
    bool read_only, cdrom;
  };
  explicit IdeInstance(std::vector<Drive> drives) : specs_(std::move(drives)) {}

  std::string name() const override { return "ide0"; }

  void open(launcher::VmSandbox& sandbox) override {
    for (const Drive& spec : specs_) {
      images_.push_back(launcher::open_disk(spec.path, spec.read_only || spec.cdrom));
      sandbox.label_image(images_.back().fd.get(), images_.back().read_only, images_.back().path);
    }
  }

  ipc::DeviceConfig config(launcher::FdList& fds) const override {
    ipc::DeviceConfig config;
    ipc::IdeConfig* ide = config.mutable_ide();
    for (size_t i = 0; i < images_.size(); ++i) {
      ipc::IdeDrive* d = ide->add_drives();
      d->set_fd(fds.add(images_[i].fd.get()));
      d->set_position(static_cast<uint32_t>(i));
      d->set_cdrom(specs_[i].cdrom);
      d->set_read_only(images_[i].read_only);
      d->set_serial("BH-IDE" + std::to_string(i));
    }
    return config;
  }

  // It writes within its images.
  launcher::RoleLimits limits() const override {
    uint64_t largest = 1;
    for (const launcher::DiskImage& d : images_) largest = std::max(largest, d.size);
    return {largest, 256};
  }

  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    ipc::LegacyAttachment* legacy = slot.mutable_legacy();
    legacy->set_kind("ide");
    // The compatibility-mode ports, in the order of the device's regions.
    const std::pair<uint64_t, uint64_t> windows[] = {{0x1f0, 8}, {0x3f6, 1}, {0x170, 8}, {0x376, 1}};
    for (uint32_t region = 0; region < 4; ++region) {
      ipc::LegacyAttachment::Window* w = legacy->add_windows();
      w->set_space(ipc::LegacyAttachment::Window::PORT_IO);
      w->set_base(windows[region].first);
      w->set_size(windows[region].second);
      w->set_region(region);
    }
    legacy->add_irqs()->set_gsi(kIsaIrqPrimary);  // ISA: edge-triggered
    legacy->add_irqs()->set_gsi(kIsaIrqSecondary);
    legacy->set_restartable(true);  // its state lives in the core's state page
    return slot;
  }

 private:
  std::vector<Drive> specs_;
  std::vector<launcher::DiskImage> images_;
};

class IdeKind : public DeviceKind {
 public:
  IdeKind() {
    name = "ide";
    executable = "bulkhead-ide";
    process_name = "bh-ide";
    policy = "ide";
    selinux_type = "bulkhead_ide_t";
    summary = "PIIX3 IDE controller (8086:7010, compatibility mode, bus-master DMA) with ATA disks (LBA48) and an "
              "ATAPI CD-ROM, on the block backend of virtio-scsi; legacy device protocol";
    example = {"--disk", "{dir}/ide.img,bus=ide"};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--disk", "PATH[,ro]",
             "A disk image on the IDE controller, in drive positions in order (primary master first), for guests without virtio "
             "drivers; the default bus in --mode full",
             "bus=ide", Mode::kFull, true, ""},
            {"--cdrom", "ISO", "An ISO image as an ATAPI CD-ROM on the IDE controller (read-only), in either mode", "",
             std::nullopt, false, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext&) const override {
    std::vector<IdeInstance::Drive> drives;
    for (const std::string& spec : values.at(0)) {
      OptionItems items = parse_option_items("--disk", spec, {"ro", "bus"});
      if (items.first.empty()) throw InputError("--disk '" + spec + "' has no path");
      if (items.get("ro") && !items.get("ro")->empty()) throw InputError("--disk '" + spec + "': ro takes no value");
      drives.push_back({items.first, items.get("ro").has_value(), false});
    }
    for (const std::string& iso : values.at(1)) {
      if (iso.empty()) throw InputError("--cdrom needs the path of an ISO image");
      drives.push_back({iso, true, true});
    }
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    if (drives.empty()) return instances;
    if (drives.size() > kDrives)
      throw InputError("the IDE controller has " + std::to_string(kDrives) + " drive positions; " +
                       std::to_string(drives.size()) + " disks and CD-ROMs were given");
    instances.push_back(std::make_unique<IdeInstance>(std::move(drives)));
    return instances;
  }
};

}  // namespace

const DeviceKind& ide_kind() {
  static const IdeKind kind;
  return kind;
}

}  // namespace bulkhead::devices
