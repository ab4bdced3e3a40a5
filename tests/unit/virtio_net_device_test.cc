// The virtio-net device, driven through its vhost-user back-end by a fake driver, in front
// of a real SOCK_SEQPACKET socket as its host end (the one user-mode networking uses): what
// the guest sends, what it receives into merged buffers, the control queue, and the chains a
// hostile driver builds.
#include "device-procs/virtio-net/virtio_net_device.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <numeric>

#include "tests/unit/fake_driver.h"

namespace bulkhead::device {
namespace {

using test::DriverQueue;
using vhost_user::Descriptor;
using vhost_user::kDescWrite;
namespace nf = net_feature;

constexpr uint64_t kHeaderBytes = sizeof(VirtioNetHeader);
constexpr uint64_t kTx = 0x100000, kRx = 0x200000, kCtrl = 0x300000;
const std::array<uint8_t, 6> kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

class VirtioNetDeviceTest : public ::testing::Test, public test::FrontEnd {
 protected:
  VirtioNetDeviceTest() : FrontEnd(loop) {}

  // The device with `pairs` queue pairs, the driver accepting `features`; queues 0 (receive),
  // 1 (transmit) and the control queue started.
  void start(uint64_t features, uint32_t pairs = 1) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    host.reset(sv[0]);
    std::vector<UniqueFd> fds;
    fds.emplace_back(sv[1]);
    ipc::NetBackend config;
    config.set_packet_fd(0);
    device = std::make_unique<VirtioNetDevice>(loop, make_net_backend(config, fds),
                                               VirtioNetDevice::Options{kMac, pairs, 1500});
    backend = std::make_unique<vhost_user::Backend>(*device, loop, take_backend_socket());
    device->attach(*backend);
    negotiate(features & device->features());
    set_mem_table();
    start_queue(rx, 0, rx_kick.get(), rx_call.get());
    start_queue(tx, 1, tx_kick.get(), tx_call.get());
    uint32_t control = (features & nf::kMq) ? 2 * pairs : 2;
    start_queue(ctrl, control, ctrl_kick.get(), ctrl_call.get());
    for (int call : {rx_call.get(), tx_call.get(), ctrl_call.get()})
      read_counter(call);  // SET_VRING_CALL re-sends a possibly lost notification
  }
  // A transmit chain of `pieces` (gpa, length) readable descriptors.
  void transmit(const std::vector<std::pair<uint64_t, uint32_t>>& pieces) {
    std::vector<Descriptor> d;
    for (auto [gpa, len] : pieces) d.push_back({gpa, len, 0, 0});
    tx.add_chain(next_tx_, d);
    next_tx_ = static_cast<uint16_t>(next_tx_ + d.size());
    kick(tx_kick.get());
    pump();
  }
  // A frame from the host end (as bh-slirp sends it: no header).
  void arrive(const std::string& frame) {
    ASSERT_EQ(::send(host.get(), frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
    pump();
  }
  std::string sent_frame() {
    char buffer[70000];
    ssize_t n = ::recv(host.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }
  void give_rx_buffers(int count, uint32_t size) {
    for (int i = 0; i < count; ++i) {
      rx.add_chain(next_rx_, {{kRx + next_rx_ * 0x1000ull, size, kDescWrite, 0}});
      ++next_rx_;
    }
    kick(rx_kick.get());
    pump();
  }
  uint8_t control(std::vector<uint8_t> command) {
    std::memcpy(ram.at(kCtrl), command.data(), command.size());
    *ram.at(kCtrl + 0x800) = 0xee;
    ctrl.add_chain(next_ctrl_, {{kCtrl, static_cast<uint32_t>(command.size()), 0, 0}, {kCtrl + 0x800, 1, kDescWrite, 0}});
    next_ctrl_ = static_cast<uint16_t>(next_ctrl_ + 2);
    kick(ctrl_kick.get());
    pump();
    return *ram.at(kCtrl + 0x800);
  }
  void put_frame(uint64_t gpa, const std::string& frame, VirtioNetHeader header = {}) {
    std::memcpy(ram.at(gpa), &header, kHeaderBytes);
    std::memcpy(ram.at(gpa + kHeaderBytes), frame.data(), frame.size());
  }
  static std::string frame_to(const std::array<uint8_t, 6>& dst, size_t length, char fill = 'f') {
    std::string f(length, fill);
    std::memcpy(f.data(), dst.data(), 6);
    return f;
  }
  VirtioNetHeader rx_header(uint16_t buffer) {
    VirtioNetHeader h;
    std::memcpy(&h, ram.at(kRx + buffer * 0x1000ull), kHeaderBytes);
    return h;
  }

  EventLoop loop;
  UniqueFd host;
  std::unique_ptr<VirtioNetDevice> device;
  std::unique_ptr<vhost_user::Backend> backend;
  DriverQueue rx{ram, 64, 0x10000}, tx{ram, 64, 0x20000}, ctrl{ram, 16, 0x30000};
  UniqueFd rx_kick = eventfd(), rx_call = eventfd(), tx_kick = eventfd(), tx_call = eventfd(), ctrl_kick = eventfd(),
           ctrl_call = eventfd();
  uint16_t next_tx_ = 0, next_rx_ = 0, next_ctrl_ = 0;
};

constexpr uint64_t kCommon = vhost_user::feature::kVersion1 | nf::kMac | nf::kStatus | nf::kMrgRxbuf | nf::kCtrlVq |
                             nf::kCtrlRx;

TEST_F(VirtioNetDeviceTest, OffersNoChecksumOffloadsOnAHostEndWithoutHeaders) {
  start(kCommon);
  EXPECT_FALSE(device->features() & (nf::kCsum | nf::kGuestCsum | nf::kHostTso4)) << "user-mode networking wants whole frames";
  EXPECT_EQ(device->queue_count(), 3u);
  std::vector<uint8_t> config = device->config();
  ASSERT_EQ(config.size(), 12u);
  EXPECT_TRUE(std::equal(kMac.begin(), kMac.end(), config.begin()));
  EXPECT_EQ(config[6], 1) << "link up";
  EXPECT_EQ(config[8], 1) << "one queue pair";
}

TEST_F(VirtioNetDeviceTest, SendsTheFrameWithoutItsHeaderWhereverTheHeaderIsSplit) {
  start(kCommon);
  std::string frame = frame_to({1, 2, 3, 4, 5, 6}, 300);
  put_frame(kTx, frame);
  transmit({{kTx, static_cast<uint32_t>(kHeaderBytes + frame.size())}});
  EXPECT_EQ(sent_frame(), frame);
  // The header in three pieces, the frame in two: the device gathers both (DPDK CVE-2022-2132).
  transmit({{kTx, 5}, {kTx + 5, 3}, {kTx + 8, 4 + 100}, {kTx + 112, static_cast<uint32_t>(frame.size() - 100)}});
  EXPECT_EQ(sent_frame(), frame);
  EXPECT_EQ(device->counters().tx_packets, 2u);
  EXPECT_EQ(tx.used_idx(), 2u) << "both chains were returned";
}

TEST_F(VirtioNetDeviceTest, DropsWhatNoNetworkCouldCarryAndCarriesOn) {
  start(kCommon);
  transmit({{kTx, 4}});  // shorter than the header
  transmit({{kTx, static_cast<uint32_t>(kHeaderBytes)}});  // a header and no frame
  std::string frame = frame_to({1, 2, 3, 4, 5, 6}, 100);
  VirtioNetHeader csum{};
  csum.flags = kNetHeaderNeedsCsum;  // an offload the driver could not negotiate here
  put_frame(kTx, frame, csum);
  transmit({{kTx, static_cast<uint32_t>(kHeaderBytes + frame.size())}});
  VirtioNetHeader gso{};
  gso.gso_type = kGsoTcpV4;
  put_frame(kTx + 0x1000, frame, gso);
  transmit({{kTx + 0x1000, static_cast<uint32_t>(kHeaderBytes + frame.size())}});
  transmit({{kTx, 40000}, {kTx, 40000}});  // 80 KB: beyond any frame
  EXPECT_EQ(sent_frame(), "") << "nothing reached the network";
  const auto& c = device->counters();
  EXPECT_EQ(c.tx_short, 2u);
  EXPECT_EQ(c.tx_bad_header, 2u);
  EXPECT_EQ(c.tx_oversize, 1u);
  EXPECT_EQ(tx.used_idx(), 5u) << "each chain is completed, so the ring does not fill up";
  put_frame(kTx, frame);
  transmit({{kTx, static_cast<uint32_t>(kHeaderBytes + frame.size())}});
  EXPECT_EQ(sent_frame(), frame);
}

TEST_F(VirtioNetDeviceTest, MergesAFrameIntoSeveralBuffersPublishedAtOnce) {
  start(kCommon);
  give_rx_buffers(8, 512);
  std::string frame = frame_to(kMac, 1400, 'x');
  for (size_t i = 0; i < frame.size(); ++i) frame[i] = static_cast<char>(i * 7);
  arrive(frame);
  ASSERT_EQ(rx.used_idx(), 3u) << "1412 bytes in buffers of 512";
  EXPECT_EQ(rx_header(0).num_buffers, 3u);
  std::string got;
  for (uint16_t i = 0; i < 3; ++i) {
    EXPECT_EQ(rx.used_id(i), i);
    got.append(reinterpret_cast<char*>(ram.at(kRx + i * 0x1000ull)), rx.used_len(i));
  }
  EXPECT_EQ(got.substr(kHeaderBytes), frame);
  EXPECT_EQ(read_counter(rx_call.get()), 1u) << "one interrupt for the frame";
  // The next frame starts in the next buffer, not in what was left of the last one.
  arrive(frame_to(kMac, 60));
  EXPECT_EQ(rx.used_idx(), 4u);
  EXPECT_EQ(rx.used_id(3), 3u);
  EXPECT_EQ(rx_header(3).num_buffers, 1u);
}

TEST_F(VirtioNetDeviceTest, WithoutMergingAFrameMustFitOneBuffer) {
  start(kCommon & ~nf::kMrgRxbuf);
  give_rx_buffers(2, 512);
  arrive(frame_to(kMac, 1400));
  EXPECT_EQ(rx.used_idx(), 0u);
  EXPECT_EQ(device->counters().rx_too_big, 1u);
  arrive(frame_to(kMac, 200));
  EXPECT_EQ(rx.used_idx(), 1u) << "the buffer taken for the dropped frame serves the next one";
  EXPECT_EQ(rx.used_len(0), kHeaderBytes + 200);
}

TEST_F(VirtioNetDeviceTest, FramesWaitForBuffersAndTheDeviceAsksForThem) {
  start(kCommon);
  arrive(frame_to(kMac, 100, 'a'));
  arrive(frame_to(kMac, 100, 'b'));
  EXPECT_EQ(rx.used_idx(), 0u);
  EXPECT_FALSE(backend->rearm()) << "nothing to do: frames wait, and the device sleeps until buffers come";
  give_rx_buffers(1, 2048);
  EXPECT_EQ(rx.used_idx(), 1u);
  EXPECT_EQ(*ram.at(kRx + kHeaderBytes + 6), 'a') << "the oldest frame first";
  give_rx_buffers(1, 2048);
  EXPECT_EQ(rx.used_idx(), 2u);
  EXPECT_EQ(*ram.at(kRx + 0x1000 + kHeaderBytes + 6), 'b');
}

TEST_F(VirtioNetDeviceTest, ReceiveBuffersAreNoWorkWhileNoFrameWaits) {
  start(kCommon);
  give_rx_buffers(4, 2048);
  EXPECT_FALSE(backend->rearm()) << "available receive buffers alone must not keep the device polling";
}

TEST_F(VirtioNetDeviceTest, ControlQueueSetsFiltersAndRefusesLies) {
  start(kCommon);
  EXPECT_EQ(control({0, 0, 1}), 0) << "promiscuous on";
  EXPECT_EQ(control({0, 1, 0}), 0) << "all-multicast off";
  EXPECT_EQ(control({1, 0, 0, 0, 0, 0, 0, 0, 0, 0}), 0) << "empty unicast and multicast tables";
  EXPECT_EQ(control({1, 0, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}), 1) << "a table longer than its command";
  EXPECT_EQ(control({0x7e, 0}), 1) << "no such class";
  EXPECT_EQ(control({0, 0}), 1) << "no data";
  EXPECT_EQ(control({4, 0, 2, 0}), 1) << "queue pairs without VIRTIO_NET_F_MQ";
  EXPECT_EQ(control({0, 0, 0}), 0) << "promiscuous off: filtering by address";
  give_rx_buffers(4, 2048);
  arrive(frame_to({0x52, 0x54, 0, 0, 0, 1}, 60));  // someone else's
  arrive(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 60));
  arrive(frame_to({0x01, 0x00, 0x5e, 0, 0, 1}, 60));  // a multicast group not joined
  arrive(frame_to(kMac, 60));
  EXPECT_EQ(rx.used_idx(), 2u) << "the broadcast and our own frame";
  EXPECT_EQ(device->counters().rx_filtered, 2u);
  EXPECT_EQ(device->counters().ctrl_errors, 4u);
}

TEST_F(VirtioNetDeviceTest, TheControlQueueFollowsTheNegotiatedPairs) {
  start(kCommon | nf::kMq, 2);
  EXPECT_EQ(device->queue_count(), 5u);
  EXPECT_EQ(control({4, 0, 2, 0}), 0) << "two pairs";
  EXPECT_EQ(control({4, 0, 3, 0}), 1) << "more than the device has";
}

TEST_F(VirtioNetDeviceTest, WithoutMqTheControlQueueIsTheThird) {
  start(kCommon, 2);
  EXPECT_EQ(control({0, 0, 1}), 0) << "queue 2 is the control queue when the driver takes one pair";
}

}  // namespace
}  // namespace bulkhead::device
