// bh-virtio-net: a virtio-net device as a vhost-user back-end, in its own process. It is handed
// its vhost-user socket and its host end (tap queues, or the socket to bh-slirp); it opens
// nothing and holds no socket it did not need.
#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "device-procs/common/device_process.h"
#include "device-procs/virtio-net/virtio_net_device.h"
#include "ipc/control_channel.h"

using namespace bulkhead;

int main() {
  return device::run_device_process(
      "bh-virtio-net", "virtio-net", ipc::DeviceConfig::kVirtioNet,
      [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
        const ipc::VirtioNetConfig& net = config.virtio_net();
        device::VirtioNetDevice::Options options;
        if (net.mac().size() != 6) throw InputError("virtio-net needs a 6-byte MAC address");
        std::memcpy(options.mac.data(), net.mac().data(), 6);
        options.queue_pairs = net.queue_pairs() ? net.queue_pairs() : 1;
        options.mtu = static_cast<uint16_t>(net.backend().mtu() ? net.backend().mtu() : 1500);
        device::VirtioNetDevice device(loop, device::make_net_backend(net.backend(), fds), options);
        vhost_user::Backend backend(device, loop, device::take_core_socket(config, fds));
        device.attach(backend);
        device::serve_vhost_user(backend, device, loop, std::chrono::microseconds(std::min(net.poll_us(), 1000u)));
        const auto& c = device.counters();
        if (c.tx_short || c.tx_oversize || c.tx_bad_header || c.ctrl_errors)
          spdlog::warn("the guest sent malformed frames or commands, dropped: {} shorter than the header, {} oversize, "
                       "{} with offloads it did not negotiate, {} bad control commands",
                       c.tx_short, c.tx_oversize, c.tx_bad_header, c.ctrl_errors);
      });
}
