// libFuzzer: a hostile guest's virtio-balloon rings. One device, started once through its
// vhost-user back-end the way our core starts it; each input is one chain for the inflate,
// deflate, statistics or free-page-reporting queue (descriptor layouts as the input says),
// and the bytes the descriptors point at (page numbers, statistics). Page numbers may point
// anywhere, even at the rings themselves, which then read zero: the device must survive that
// too. What it holds must be what it counts.
//   input: tests/fuzz/chain_input.h, then bytes copied to guest memory at 0x100000
#include <cstring>

#include "device-procs/virtio-balloon/balloon_device.h"
#include "tests/fuzz/chain_input.h"

using namespace bulkhead;
using bulkhead::device::BalloonDevice;

namespace {

constexpr uint64_t kData = 0x100000;
constexpr uint32_t kQueues = 4;

struct Rig {
  Rig() : front(loop) {
    BalloonDevice::Options options;
    options.target_pages = 256;
    options.free_page_reporting = true;
    device = std::make_unique<BalloonDevice>(loop, options);
    backend = std::make_unique<vhost_user::Backend>(*device, loop, front.take_backend_socket());
    device->attach(*backend);
    front.negotiate(device->features());
    front.set_mem_table();
    for (uint32_t q = 0; q < kQueues; ++q) front.start_queue(*queues[q], q, kicks[q].get(), calls[q].get());
  }
  EventLoop loop;
  test::FrontEnd front;
  std::unique_ptr<BalloonDevice> device;
  std::unique_ptr<vhost_user::Backend> backend;
  test::DriverQueue inflate{front.ram, 64, 0x10000}, deflate{front.ram, 64, 0x20000}, stats{front.ram, 64, 0x30000},
      report{front.ram, 64, 0x40000};
  test::DriverQueue* queues[kQueues] = {&inflate, &deflate, &stats, &report};
  UniqueFd kicks[kQueues] = {test::FrontEnd::eventfd(), test::FrontEnd::eventfd(), test::FrontEnd::eventfd(),
                             test::FrontEnd::eventfd()};
  UniqueFd calls[kQueues] = {test::FrontEnd::eventfd(), test::FrontEnd::eventfd(), test::FrontEnd::eventfd(),
                             test::FrontEnd::eventfd()};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  if (size < 2 || !rig.backend->connected()) return 0;
  test::ChainInput input = test::decode_chain_input(data, size, kQueues);
  std::memcpy(rig.front.ram.at(kData), input.rest, std::min<size_t>(input.rest_size, 0x100000));
  test::publish_chain(*rig.queues[input.queue], input.chain, rig.kicks[input.queue].get());
  for (int i = 0; i < 4; ++i) rig.loop.run_once(0);
  const auto& c = rig.device->counters();
  if (c.inflated - c.deflated != rig.device->pages_held()) __builtin_trap();
  if (rig.device->pages_held() > test::GuestRam::kSize / BalloonDevice::kGuestPage) __builtin_trap();
  return 0;
}
