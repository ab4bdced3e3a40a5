// bh-ide: the PIIX3 IDE controller (ide_controller.h) with its disks and CD-ROM, in its own
// process. It is handed its socket to the core and its images; it opens nothing.
#include <sys/stat.h>

#include "common/error.h"
#include "common/log.h"
#include "device-procs/common/device_process.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/ide/ide_controller.h"
#include "ipc/control_channel.h"

using namespace bulkhead;

int main() {
  return device::run_device_process(
      "bh-ide", "ide", ipc::DeviceConfig::kIde,
      [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
        std::array<device::IdeDrive, 4> drives;
        for (const ipc::IdeDrive& d : config.ide().drives()) {
          if (d.position() >= drives.size() || drives[d.position()].kind != device::IdeDrive::Kind::kNone)
            throw InputError("IDE drive position " + std::to_string(d.position()) + " is not free");
          if (d.serial().size() > 20) throw InputError("an IDE serial number has at most 20 characters");
          UniqueFd image = ipc::take_fd(fds, d.fd(), "IDE image");
          struct stat st;
          // fstat on the image descriptor the launcher handed us.
          if (!image || ::fstat(image.get(), &st) != 0) throw InputError("IDE image descriptor missing");
          const uint64_t bytes = static_cast<uint64_t>(st.st_size);
          device::IdeDrive& drive = drives[d.position()];
          drive.backend = std::make_unique<device::BlockBackend>(std::move(image), bytes, 32);
          drive.read_only = d.read_only() || d.cdrom();
          if (d.cdrom()) {
            drive.kind = device::IdeDrive::Kind::kCdrom;
            drive.cd = {d.serial(), "BULKHEAD ATAPI DVD-ROM", {}};
            drive.cdrom = std::make_unique<device::Cdrom>(bytes);
          } else {
            drive.kind = device::IdeDrive::Kind::kDisk;
            drive.disk.sectors = bytes / 512;
            drive.disk.serial = d.serial();
            drive.disk.model = "BULKHEAD HARDDISK";
          }
        }
        device::IdeController controller(loop, std::move(drives));
        device::LegacyDeviceServer server(controller, loop, device::take_core_socket(config, fds));
        server.run();
        const device::IdeCounters& c = controller.counters();
        if (c.dma_refused || c.dma_short || c.stray_data)
          spdlog::warn("the guest's driver made mistakes: {} DMA transfers refused (bus mastering off, or memory "
                       "outside guest RAM), {} PRD tables shorter than their transfer, {} data-port accesses with "
                       "no transfer in progress",
                       c.dma_refused, c.dma_short, c.stray_data);
      });
}
