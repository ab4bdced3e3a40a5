// bh-virtio-scsi: a virtio-scsi device as a vhost-user back-end, in its own process. It is
// handed its disk images and its vhost-user socket; it opens nothing itself.
#include <sched.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>

#include "common/error.h"
#include "common/event_loop.h"
#include "common/log.h"
#include "device-procs/virtio-scsi/virtio_scsi.h"
#include "ipc/control.pb.h"
#include "ipc/control_channel.h"
#include "policy/confine.h"
#include "vhost-user/backend.h"

using namespace bulkhead;

namespace {

// Adaptive polling, as for legacy devices (docs/legacy-device-protocol.md): while requests
// keep coming, poll the rings and the I/O completion ring with the guest's kicks suppressed;
// after `window` without work, ask for kicks again and sleep.
void serve(vhost_user::Backend& backend, device::VirtioScsi& device, EventLoop& loop, std::chrono::microseconds window) {
  auto last_work = std::chrono::steady_clock::now();
  int spins = 0;
  while (backend.connected() && !loop.stopped()) {
    if (window.count()) {
      bool worked = backend.poll();
      worked |= device.poll_completions();
      auto now = std::chrono::steady_clock::now();
      if (worked || device.busy()) last_work = now;
      if (now - last_work < window) {
        if (++spins % 64 == 0) loop.run_once(0);  // control messages, vhost-user requests
        // I/O the kernel handed to its worker threads needs this CPU more than our spinning.
        if (!worked && device.busy()) sched_yield();
        else __builtin_ia32_pause();
        continue;
      }
      if (backend.rearm()) continue;
    }
    loop.run_once(-1);
    last_work = std::chrono::steady_clock::now();
  }
}

}  // namespace

int main() {
  init_process("bh-virtio-scsi");
  try {
    ipc::ControlChannel control{UniqueFd(ipc::kControlFd)};
    ipc::StartRole start;
    std::vector<UniqueFd> fds;
    if (!control.receive(start, fds) || !start.has_device() || !start.device().has_virtio_scsi())
      throw InputError("no virtio-scsi configuration received");
    policy::confine(start.confinement(), "virtio-scsi", "bh-virtio-scsi");
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
    serve(backend, device, loop, std::chrono::microseconds(std::min(config.poll_us(), 1000u)));
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
