// bh-slirp: user-mode networking for one NIC (slirp_service.h), in the host's network namespace
// but otherwise confined like every role: its own uid, an empty root holding only the host's
// DNS servers (/etc/resolv.conf), no capabilities, and a seccomp policy of socket calls.
#include "device-procs/common/device_process.h"
#include "device-procs/slirp/slirp_service.h"
#include "ipc/control_channel.h"

using namespace bulkhead;

int main() {
  return device::run_device_process("bh-slirp", "slirp", ipc::DeviceConfig::kSlirp,
                                    [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
                                      UniqueFd frames = ipc::take_fd(fds, config.slirp().packet_fd(), "the NIC's socket");
                                      if (!frames) throw InputError("no socket to the NIC's process");
                                      device::SlirpService service(config.slirp(), std::move(frames));
                                      service.run(loop);
                                    });
}
