// virtio-net (virtio 1.x, section 5.1) as a vhost-user back-end: receive and transmit queue
// pairs and a control queue, in front of a NetBackend (a tap, or the user-mode networking
// helper). Frames are copied once each way between the guest's buffers and the host end;
// every chain is bounded and every header is copied out of guest memory before it is read.
#pragma once

#include <array>
#include <memory>
#include <set>
#include <vector>

#include "common/event_loop.h"
#include "device-procs/common/net_backend.h"
#include "vhost-user/backend.h"

namespace bulkhead::device {

namespace net_feature {
inline constexpr uint64_t kCsum = 1ull << 0, kGuestCsum = 1ull << 1, kMtu = 1ull << 3, kMac = 1ull << 5,
                          kGuestTso4 = 1ull << 7, kGuestTso6 = 1ull << 8, kGuestEcn = 1ull << 9,
                          kHostTso4 = 1ull << 11, kHostTso6 = 1ull << 12, kHostEcn = 1ull << 13,
                          kMrgRxbuf = 1ull << 15, kStatus = 1ull << 16, kCtrlVq = 1ull << 17, kCtrlRx = 1ull << 18,
                          kMq = 1ull << 22;
}  // namespace net_feature

class VirtioNetDevice : public vhost_user::BackendDevice {
 public:
  static constexpr uint16_t kQueueSize = 1024;
  static constexpr uint32_t kMaxPairs = 16;

  struct Options {
    std::array<uint8_t, 6> mac{};
    uint32_t queue_pairs = 1;
    uint16_t mtu = 1500;
  };
  // What was dropped, and why (the guest's mistakes and the host's back-pressure).
  struct Counters {
    uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
    uint64_t tx_short = 0;        // chains no longer than the header
    uint64_t tx_oversize = 0;     // frames beyond kMaxFrame
    uint64_t tx_bad_header = 0;   // offloads asked for that were not negotiated
    uint64_t tx_refused = 0;      // the host end did not take the frame
    uint64_t rx_too_big = 0;      // frames no guest buffer could hold
    uint64_t rx_filtered = 0;     // not for this NIC's address (control queue in use)
    uint64_t ctrl_errors = 0;     // malformed or unsupported control commands
  };

  VirtioNetDevice(EventLoop& loop, std::unique_ptr<NetBackend> backend, Options options);

  uint64_t features() const override;
  uint32_t queue_count() const override { return 2 * pairs_ + 1; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  std::vector<uint8_t> config() const override;
  void set_features(uint64_t acked) override;
  void process(vhost_user::Queue& queue) override;
  bool available_is_work(const vhost_user::Queue& queue) const override;
  void resubmit(vhost_user::Queue& queue, std::vector<vhost_user::Chain> chains) override;
  void drain(vhost_user::Queue&) override {}
  void reset() override;
  bool poll_completions() override;

  // The vhost-user server, so that queues can be reached by index (set once, by main).
  void attach(vhost_user::Backend& server) { server_ = &server; }
  const Counters& counters() const { return counters_; }
  const std::array<uint8_t, 6>& mac() const { return mac_; }

 private:
  // Per host-end queue: a frame received from it that waits for guest buffers.
  struct HostQueue {
    std::vector<uint8_t> frame;
    size_t length = 0;
    bool watching = true;    // frames are read from the host end (EPOLLIN)
    bool congested = false;  // transmits wait for it to drain (EPOLLOUT)
  };
  void transmit(vhost_user::Queue& queue, vhost_user::Chain chain);
  // Moves frames from host-end queue `q` into its receive ring while buffers last.
  bool receive(size_t q);
  bool deliver(vhost_user::Queue& rx, HostQueue& state);
  std::vector<vhost_user::Chain>& held(const vhost_user::Queue& rx) { return held_[rx.index() / 2]; }
  bool wanted(const uint8_t* frame, size_t length) const;
  void control(vhost_user::Queue& queue, vhost_user::Chain chain);
  void watch(size_t q, bool on);
  void set_congested(size_t q, bool on);
  void update_events(size_t q);
  void resume_transmit(size_t q);
  vhost_user::Queue* queue(uint32_t index) const;
  // After the receive and transmit queue of every pair the driver may use: all of them with
  // MQ, otherwise one (virtio 1.x, 5.1.2).
  uint32_t control_queue() const { return (acked_ & net_feature::kMq) ? 2 * pairs_ : 2; }

  EventLoop& loop_;
  std::unique_ptr<NetBackend> backend_;
  vhost_user::Backend* server_ = nullptr;
  uint32_t pairs_;
  uint16_t mtu_;
  const std::array<uint8_t, 6> options_mac_;
  std::array<uint8_t, 6> mac_;  // the driver may change it (VIRTIO_NET_CTRL_MAC_ADDR_SET)
  uint64_t acked_ = 0;
  std::vector<HostQueue> host_;  // per host-end queue
  // Per receive queue: buffers taken from its ring for a frame that did not fit yet.
  std::vector<std::vector<vhost_user::Chain>> held_;
  // Receive filtering, once the driver uses the control queue (a front-end that keeps the
  // control queue itself, like QEMU, leaves the device promiscuous).
  bool filtering_ = false, promiscuous_ = false, all_multicast_ = false;
  std::set<std::array<uint8_t, 6>> unicast_, multicast_;
  uint32_t active_pairs_ = 1;
  Counters counters_;
};

}  // namespace bulkhead::device
