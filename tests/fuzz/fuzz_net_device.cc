// libFuzzer: a hostile guest's virtio-net rings and a hostile network. One device, started
// once through its vhost-user back-end the way QEMU starts it; each input is a batch of
// chains for the transmit, receive or control queue (descriptor layouts and bytes as the
// input says), then frames arriving from the host end. Every frame the device sends must fit
// what a network carries; what it completes must be what the driver made available.
//   input: tests/fuzz/chain_input.h, then bytes copied to guest memory at 0x100000 and used as
//          host frames
#include <sys/socket.h>

#include <cstring>

#include "device-procs/virtio-net/virtio_net_device.h"
#include "tests/fuzz/chain_input.h"

using namespace bulkhead;
using bulkhead::device::VirtioNetDevice;

namespace {

constexpr uint64_t kData = 0x100000;

struct Rig {
  Rig() : front(loop) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) __builtin_trap();
    host.reset(sv[0]);
    std::vector<UniqueFd> fds;
    fds.emplace_back(sv[1]);
    ipc::NetBackend config;
    config.set_packet_fd(0);
    device = std::make_unique<VirtioNetDevice>(loop, device::make_net_backend(config, fds),
                                               VirtioNetDevice::Options{{0x52, 0x54, 0, 1, 2, 3}, 1, 1500});
    backend = std::make_unique<vhost_user::Backend>(*device, loop, front.take_backend_socket());
    device->attach(*backend);
    front.negotiate(device->features());
    front.set_mem_table();
    for (uint32_t q = 0; q < 3; ++q) front.start_queue(*queues[q], q, kicks[q].get(), calls[q].get());
  }
  EventLoop loop;
  test::FrontEnd front;
  UniqueFd host;
  std::unique_ptr<VirtioNetDevice> device;
  std::unique_ptr<vhost_user::Backend> backend;
  test::DriverQueue rx{front.ram, 64, 0x10000}, tx{front.ram, 64, 0x20000}, ctrl{front.ram, 16, 0x30000};
  test::DriverQueue* queues[3] = {&rx, &tx, &ctrl};
  UniqueFd kicks[3] = {test::FrontEnd::eventfd(), test::FrontEnd::eventfd(), test::FrontEnd::eventfd()};
  UniqueFd calls[3] = {test::FrontEnd::eventfd(), test::FrontEnd::eventfd(), test::FrontEnd::eventfd()};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  if (size < 2 || !rig.backend->connected()) return 0;
  test::ChainInput input = test::decode_chain_input(data, size, 3);
  test::DriverQueue& ring = *rig.queues[input.queue];
  std::memcpy(rig.front.ram.at(kData), input.rest, std::min<size_t>(input.rest_size, 0x100000));
  uint16_t used_before = ring.used_idx();
  test::publish_chain(ring, input.chain, rig.kicks[input.queue].get());
  if (input.rest_size) ::send(rig.host.get(), input.rest, std::min<size_t>(input.rest_size, 65536), MSG_DONTWAIT);
  for (int i = 0; i < 4; ++i) rig.loop.run_once(0);
  for (char frame[70000];;) {
    ssize_t n = ::recv(rig.host.get(), frame, sizeof frame, MSG_DONTWAIT);
    if (n <= 0) break;
    if (static_cast<size_t>(n) > device::kMaxFrame) __builtin_trap();
  }
  uint16_t completed = static_cast<uint16_t>(ring.used_idx() - used_before);
  if (completed > ring.size()) __builtin_trap();
  return 0;
}
