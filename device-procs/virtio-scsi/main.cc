// bh-virtio-scsi: a virtio-scsi device as a vhost-user back-end, in its own process. It is
// handed its disk images and its vhost-user socket; it opens nothing itself.
#include <sys/stat.h>

#include <algorithm>

#include "common/error.h"
#include "device-procs/common/device_process.h"
#include "device-procs/virtio-scsi/virtio_scsi.h"
#include "ipc/control_channel.h"

using namespace bulkhead;

int main() {
  return device::run_device_process(
      "bh-virtio-scsi", "virtio-scsi", ipc::DeviceConfig::kVirtioScsi,
      [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
        const ipc::VirtioScsiConfig& scsi = config.virtio_scsi();
        std::vector<device::VirtioScsiDevice::Disk> disks;
        for (const ipc::VirtioScsiDisk& d : scsi.disks()) {
          UniqueFd image = ipc::take_fd(fds, d.fd(), "disk image");
          struct stat st;
          // fstat on the image descriptor the launcher handed us.
          if (!image || ::fstat(image.get(), &st) != 0) throw InputError("disk image descriptor missing");
          disks.push_back({std::move(image), static_cast<uint64_t>(st.st_size), {d.read_only(), d.serial()}});
        }
        device::VirtioScsiDevice device(loop, std::move(disks), scsi.request_queues() ? scsi.request_queues() : 1);
        vhost_user::Backend backend(device, loop, device::take_core_socket(config, fds));
        device::serve_vhost_user(backend, device, loop, std::chrono::microseconds(std::min(scsi.poll_us(), 1000u)));
      });
}
