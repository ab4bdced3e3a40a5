// bh-virtio-scsi: a virtio-scsi device as a vhost-user back-end, in its own process. It is
// handed its disk images and its vhost-user socket; it opens nothing itself.
#include <sys/epoll.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/event_loop.h"
#include "common/log.h"
#include "device-procs/virtio-scsi/virtio_scsi.h"
#include "ipc/control.pb.h"
#include "ipc/control_channel.h"
#include "vhost-user/backend.h"

using namespace bulkhead;

int main() {
  init_process("bh-virtio-scsi");
  try {
    ipc::ControlChannel control{UniqueFd(ipc::kControlFd)};
    ipc::StartRole start;
    std::vector<UniqueFd> fds;
    if (!control.receive(start, fds) || !start.has_device() || !start.device().has_virtio_scsi())
      throw InputError("no virtio-scsi configuration received");
    const ipc::VirtioScsiConfig& config = start.device().virtio_scsi();
    std::vector<device::VirtioScsi::Disk> disks;
    for (const ipc::VirtioScsiDisk& d : config.disks()) {
      UniqueFd image = ipc::take_fd(fds, d.fd(), "disk image");
      struct stat st;
      // fstat on the image descriptor the launcher handed us.
      if (!image || ::fstat(image.get(), &st) != 0) throw InputError("disk image descriptor missing");
      disks.push_back({std::move(image), static_cast<uint64_t>(st.st_size), {d.read_only(), d.serial()}});
    }
    UniqueFd socket = ipc::take_fd(fds, start.device().core_socket_fd(), "vhost-user socket");
    if (!socket) throw InputError("no vhost-user socket");

    EventLoop loop;
    device::VirtioScsi device(loop, std::move(disks), config.request_queues() ? config.request_queues() : 1);
    vhost_user::Backend backend(device, loop, std::move(socket));
    loop.add(control.fd(), EPOLLRDHUP, [&loop](uint32_t) { loop.stop(); });
    while (backend.connected() && !loop.stopped()) loop.run_once(-1);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
