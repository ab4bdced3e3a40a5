// Just enough Ethernet, ARP, IPv4 and UDP for the network scenarios to reach a UDP echo
// server on the host, over any NIC the guest has a driver for (NicPort): through user-mode
// networking (the guest is 10.0.2.15, the gateway 10.0.2.2 is the host's loopback) or a tap
// (the guest is 10.0.3.2, the tap's host end 10.0.3.1).
#pragma once

#include <stdint.h>

namespace guest {

// A NIC as the link sees it: whole Ethernet frames out and in.
class NicPort {
 public:
  virtual const uint8_t* mac() const = 0;
  virtual bool send(const void* frame, uint32_t length, uint16_t pair) = 0;
  // A received frame, 0 if none waits; `buffers`: how many receive buffers it took.
  virtual uint32_t poll(uint8_t* out, uint32_t size, uint16_t* buffers, uint16_t pair) = 0;
  virtual int pairs() const { return 1; }
};

struct Addresses {
  uint8_t self[4], peer[4];
};
inline constexpr Addresses kUserAddresses = {{10, 0, 2, 15}, {10, 0, 2, 2}};
inline constexpr Addresses kTapAddresses = {{10, 0, 3, 2}, {10, 0, 3, 1}};
inline constexpr uint16_t kGuestPort = 5000;
inline constexpr uint32_t kEther = 14, kIpv4 = 20, kUdp = 8, kHeaders = kEther + kIpv4 + kUdp;
inline constexpr uint32_t kMaxPayload = 1500 - kIpv4 - kUdp;

uint8_t payload_byte(uint32_t seq, uint32_t i);

// A scenario's argument: "PORT" (user-mode networking), "tap:PORT" or "tap-mq:PORT".
struct NetArgs {
  bool tap = false, multiqueue = false;
  uint16_t port = 0;
  const Addresses& addresses() const { return tap ? kTapAddresses : kUserAddresses; }
};
NetArgs parse_net_args(const char* arg);

// One conversation with the peer: ARP, then UDP datagrams from kGuestPort.
class Link {
 public:
  Link(NicPort& nic, const Addresses& addresses, uint64_t tsc_per_us);
  bool resolve_peer();
  // A UDP datagram of `payload` to the peer's `port`, in `out` (2048 bytes at least);
  // `partial`: only the pseudo-header's sum, for the host end to finish (NEEDS_CSUM).
  uint32_t udp_frame(uint8_t* out, const uint8_t* payload, uint32_t n, uint16_t port, bool partial = false);
  bool send_udp(const uint8_t* payload, uint32_t n, uint16_t port, uint16_t pair = 0);
  // Waits for a datagram from the peer's `port` (0: none, only ARP), answering ARP requests
  // on the way; its payload length, or 0 after `timeout_us`.
  uint32_t wait_udp(uint8_t* out, uint32_t size, uint16_t port, uint64_t timeout_us);
  // Sends `n` bytes of pattern `seq` and checks the echo.
  bool echo(uint32_t seq, uint32_t n, uint16_t port, uint16_t pair = 0);
  // Asks the benchmarks' server at `port` for `count` datagrams of `size` bytes ("FLOOD"), as
  // fast as it sends them; how many arrived, and the microseconds from the first to the last.
  uint32_t flood(uint16_t port, uint32_t count, uint32_t size, uint64_t* microseconds);

  uint8_t* frame() { return frame_; }
  uint16_t max_buffers() const { return max_buffers_; }
  uint32_t frames_on(int pair) const { return pair_frames_[pair & 1]; }
  // Frames this link sent (datagrams, ARP requests and replies) since the last reset.
  uint32_t sent() const { return sent_; }
  void reset_sent() { sent_ = 0; }

 private:
  uint32_t handle(const uint8_t* f, uint32_t n, uint8_t* out, uint32_t size, uint16_t port);
  bool send(const void* frame, uint32_t length, uint16_t pair) {
    ++sent_;
    return nic_.send(frame, length, pair);
  }

  NicPort& nic_;
  Addresses a_;
  uint64_t tsc_per_us_;
  uint8_t* frame_;
  uint8_t* in_;
  uint8_t peer_mac_[6] = {};
  bool peer_known_ = false;
  uint16_t ip_id_ = 0;
  uint16_t max_buffers_ = 0;
  uint32_t pair_frames_[2] = {};
  uint32_t sent_ = 0;
};

}  // namespace guest
