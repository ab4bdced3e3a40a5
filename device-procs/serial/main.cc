// bh-serial: a 16550A UART in its own process, reached by the core over the legacy device
// protocol. It receives every descriptor it uses from the launcher and opens nothing.
#include "common/log.h"
#include "device-procs/common/device_process.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/serial/serial_device.h"
#include "ipc/control_channel.h"

using namespace bulkhead;

int main() {
  return device::run_device_process(
      "bh-serial", "serial", ipc::DeviceConfig::kSerial,
      [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop) {
        const ipc::SerialConfig& serial = config.serial();
        device::SerialDevice model(loop, {ipc::take_fd(fds, serial.input_fd(), "serial input"),
                                          ipc::take_fd(fds, serial.output_fd(), "serial output"),
                                          ipc::take_fd(fds, serial.listen_fd(), "serial listening socket"),
                                          serial.pty(), serial.output_positional()});
        device::LegacyDeviceServer server(model, loop, device::take_core_socket(config, fds));
        server.run();
        if (model.uart().dropped_output())
          spdlog::warn("guest wrote {} bytes while the output buffer was full; they were dropped",
                       model.uart().dropped_output());
      });
}
