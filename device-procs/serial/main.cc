// bh-serial: a 16550A UART in its own process, reached by the core over the legacy device
// protocol. It receives every descriptor it uses from the launcher and opens nothing.
#include "common/error.h"
#include "common/log.h"
#include "common/event_loop.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/serial/serial_device.h"
#include "ipc/control.pb.h"
#include "ipc/control_channel.h"
#include "policy/confine.h"

#include <sys/epoll.h>

using namespace bulkhead;

int main() {
  init_process("bh-serial");
  try {
    ipc::ControlChannel control{UniqueFd(ipc::kControlFd)};
    ipc::StartRole start;
    std::vector<UniqueFd> fds;
    if (!control.receive(start, fds) || !start.has_device() || !start.device().has_serial())
      throw InputError("no serial device configuration received");
    policy::confine(start.confinement(), "serial", "bh-serial");
    const ipc::DeviceConfig& config = start.device();
    const ipc::SerialConfig& serial = config.serial();

    EventLoop loop;
    device::SerialDevice model(loop, {ipc::take_fd(fds, serial.input_fd(), "serial input"),
                                      ipc::take_fd(fds, serial.output_fd(), "serial output"),
                                      ipc::take_fd(fds, serial.listen_fd(), "serial listening socket"), serial.pty()});
    UniqueFd core = ipc::take_fd(fds, config.core_socket_fd(), "core socket");
    if (!core) throw InputError("no core socket");
    device::LegacyDeviceServer server(model, loop, std::move(core));
    // The launcher going away ends the device too.
    loop.add(control.fd(), EPOLLRDHUP, [&loop](uint32_t) { loop.stop(); });
    server.run();
    if (model.uart().dropped_output())
      spdlog::warn("guest wrote {} bytes while the output buffer was full; they were dropped",
                   model.uart().dropped_output());
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
