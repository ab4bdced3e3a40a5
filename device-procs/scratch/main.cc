// bh-scratch: the test-only scratch device (scratch_device.h) in its own process.
#include "device-procs/common/device_process.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/scratch/scratch_device.h"

using namespace bulkhead;

int main() {
  return device::run_device_process("bh-scratch", "scratch", ipc::DeviceConfig::kScratch,
                                    [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
                                      device::ScratchDevice model(loop);
                                      device::LegacyDeviceServer server(model, loop, device::take_core_socket(config, fds));
                                      server.run();
                                    });
}
