// A virtio-net driver (polling): receive buffers of a chosen size (small ones make the device
// merge), transmission of whole frames or of raw descriptor chains (for hostile inputs), and
// the control queue.
#pragma once

#include <stdint.h>

#include "drivers/virtio_pci.h"

namespace guest {

class VirtioNetDriver {
 public:
  static constexpr uint16_t kType = 1;
  static constexpr uint64_t kCsum = 1ull << 0, kMtu = 1ull << 3, kMac = 1ull << 5, kMrgRxbuf = 1ull << 15,
                            kStatus = 1ull << 16, kCtrlVq = 1ull << 17, kCtrlRx = 1ull << 18, kMq = 1ull << 22;
  struct Header {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
  };
  static constexpr uint8_t kNeedsCsum = 1;
  static constexpr uint8_t kAckOk = 0, kNoAck = 0xff;

  // `wanted` on top of VERSION_1, MAC, STATUS and MTU; `rx_buffer` bytes per receive buffer.
  bool init(uint64_t wanted, uint32_t rx_buffer, int n = 0);
  uint64_t features() const { return features_; }
  int pairs() const { return pairs_; }
  const uint8_t* mac() const { return mac_; }
  uint16_t status();
  uint16_t max_pairs();
  uint16_t mtu();

  // Sends `frame` behind `header` (zero: no offloads) on pair `pair`; waits for the device.
  bool send(const void* frame, uint32_t length, const Header& header, uint16_t pair = 0);
  // Sends a chain of segments exactly as given (the header is whatever they hold).
  bool send_raw(const Segment* segs, int count, uint16_t pair = 0);
  // Pipelined transmission (benchmarks): queues `frame` behind a zero header without waiting
  // (false: the ring is full), and takes back what the device finished; `frame` must stay
  // untouched until then.
  bool submit(const void* frame, uint32_t length, uint16_t pair = 0);
  int reap(uint16_t pair = 0);
  // The next received frame, without its header, into `out`; its length, or 0 if none came
  // within `timeout_us`. `buffers`: how many receive buffers the device merged it into.
  uint32_t receive(uint8_t* out, uint32_t size, uint64_t timeout_us, uint64_t tsc_per_us, uint16_t* buffers = nullptr,
                   uint16_t pair = 0);
  // A control-queue command; the device's ack, or kNoAck.
  uint8_t control(uint8_t cls, uint8_t cmd, const void* data, uint32_t length);

 private:
  static constexpr int kMaxPairs = 2;
  static constexpr uint16_t kRxBuffers = 64;
  bool post(uint16_t pair, uint16_t buffer);
  VirtioPciDriver pci_;
  Virtqueue rx_[kMaxPairs], tx_[kMaxPairs], ctrl_;
  int pairs_ = 0;
  uint8_t* rx_memory_[kMaxPairs] = {};
  uint32_t rx_buffer_ = 0;
  Header* tx_header_ = nullptr;
  Header* zero_header_ = nullptr;
  uint8_t* ctrl_buffer_ = nullptr;
  uint64_t features_ = 0;
  uint8_t mac_[6] = {};
};

}  // namespace guest
