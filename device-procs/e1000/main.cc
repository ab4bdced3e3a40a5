// bh-e1000: an Intel 82540EM NIC (e1000_device.h) in its own process. It is handed its socket
// to the core and its host end (a tap, or the socket to bh-slirp); it opens nothing.
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "device-procs/common/device_process.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/e1000/e1000_device.h"
#include "ipc/control_channel.h"

using namespace bulkhead;

int main() {
  return device::run_device_process(
      "bh-e1000", "e1000", ipc::DeviceConfig::kE1000,
      [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
        const ipc::E1000Config& nic = config.e1000();
        if (nic.mac().size() != 6) throw InputError("the e1000 needs a 6-byte MAC address");
        std::array<uint8_t, 6> mac;
        std::memcpy(mac.data(), nic.mac().data(), 6);
        device::E1000Device model(loop, device::make_net_backend(nic.backend(), fds), mac);
        device::LegacyDeviceServer server(model, loop, device::take_core_socket(config, fds));
        server.run();
        const auto& c = model.counters();
        if (c.tx_overflow || c.tx_bad_offload || c.dma_refused || c.ring_invalid || c.rx_oversize)
          spdlog::warn("the guest's driver made mistakes, dropped: {} packets beyond 64 KiB, {} with offloads that do "
                       "not fit, {} descriptors or buffers outside guest RAM, {} ring walks from a head or tail outside "
                       "its ring; {} received frames beyond the receive limit",
                       c.tx_overflow, c.tx_bad_offload, c.dma_refused, c.ring_invalid, c.rx_oversize);
      });
}
