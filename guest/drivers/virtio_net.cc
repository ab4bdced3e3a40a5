#include "drivers/virtio_net.h"

#include <string.h>

#include "arch.h"
#include "dma.h"

namespace guest {

namespace {
constexpr uint16_t kQueueSize = 128;
constexpr uint32_t kHeaderSize = sizeof(VirtioNetDriver::Header);
}  // namespace

bool VirtioNetDriver::init(uint64_t wanted, uint32_t rx_buffer, int n) {
  if (!pci_.probe(kType, n)) return false;
  features_ = pci_.negotiate(VirtioPciDriver::kFeatureVersion1 | kMac | kStatus | kMtu | wanted);
  if (!features_) return false;
  for (int i = 0; i < 6; ++i) mac_[i] = pci_.device_config()[i];
  pairs_ = (features_ & kMq) && max_pairs() >= kMaxPairs ? kMaxPairs : 1;
  rx_buffer_ = rx_buffer;
  for (int p = 0; p < pairs_; ++p) {
    if (!pci_.setup_queue(static_cast<uint16_t>(2 * p), rx_[p], kQueueSize) ||
        !pci_.setup_queue(static_cast<uint16_t>(2 * p + 1), tx_[p], kQueueSize))
      return false;
  }
  uint16_t control_index = (features_ & kMq) ? static_cast<uint16_t>(2 * max_pairs()) : 2;
  if ((features_ & kCtrlVq) && !pci_.setup_queue(control_index, ctrl_, 16)) return false;
  tx_header_ = static_cast<Header*>(dma_alloc(sizeof(Header), 16));
  zero_header_ = static_cast<Header*>(dma_alloc(sizeof(Header), 16));
  memset(zero_header_, 0, sizeof(Header));
  ctrl_buffer_ = static_cast<uint8_t*>(dma_alloc(512, 16));
  pci_.driver_ok();
  for (int p = 0; p < pairs_; ++p) {
    rx_memory_[p] = static_cast<uint8_t*>(dma_alloc(static_cast<size_t>(rx_buffer) * kRxBuffers, 64));
    for (uint16_t b = 0; b < kRxBuffers; ++b) post(static_cast<uint16_t>(p), b);
    pci_.kick(static_cast<uint16_t>(2 * p), rx_[p]);
  }
  return true;
}

uint16_t VirtioNetDriver::status() { return *reinterpret_cast<volatile uint16_t*>(pci_.device_config() + 6); }
uint16_t VirtioNetDriver::max_pairs() { return *reinterpret_cast<volatile uint16_t*>(pci_.device_config() + 8); }
uint16_t VirtioNetDriver::mtu() { return *reinterpret_cast<volatile uint16_t*>(pci_.device_config() + 10); }

bool VirtioNetDriver::post(uint16_t pair, uint16_t buffer) {
  Segment seg{rx_memory_[pair] + static_cast<size_t>(buffer) * rx_buffer_, rx_buffer_, true};
  return rx_[pair].add(&seg, 1, buffer);
}

bool VirtioNetDriver::send_raw(const Segment* segs, int count, uint16_t pair) {
  if (pair >= pairs_) return false;
  Virtqueue& tx = tx_[pair];
  if (!tx.add(segs, count, 0, count > 8)) return false;
  pci_.kick(static_cast<uint16_t>(2 * pair + 1), tx);
  uint64_t token;
  uint32_t written;
  while (!tx.pop(&token, &written)) pause();
  return true;
}

bool VirtioNetDriver::submit(const void* frame, uint32_t length, uint16_t pair) {
  if (pair >= pairs_) return false;
  Segment segs[2] = {{zero_header_, kHeaderSize, false}, {frame, length, false}};
  if (!tx_[pair].add(segs, 2, 0)) return false;
  pci_.kick(static_cast<uint16_t>(2 * pair + 1), tx_[pair]);
  return true;
}

int VirtioNetDriver::reap(uint16_t pair) {
  uint64_t token;
  uint32_t written;
  int n = 0;
  while (pair < pairs_ && tx_[pair].pop(&token, &written)) ++n;
  return n;
}

bool VirtioNetDriver::send(const void* frame, uint32_t length, const Header& header, uint16_t pair) {
  *tx_header_ = header;
  Segment segs[2] = {{tx_header_, kHeaderSize, false}, {frame, length, false}};
  return send_raw(segs, 2, pair);
}

uint32_t VirtioNetDriver::receive(uint8_t* out, uint32_t size, uint64_t timeout_us, uint64_t tsc_per_us,
                                  uint16_t* buffers, uint16_t pair) {
  if (pair >= pairs_) return 0;
  Virtqueue& rx = rx_[pair];
  uint64_t deadline = rdtsc() + timeout_us * tsc_per_us;
  uint64_t token;
  uint32_t written;
  while (!rx.pop(&token, &written)) {
    if (rdtsc() > deadline) return 0;
    pause();
  }
  // The first buffer starts with the header, whose num_buffers says how many more follow
  // (they were published together).
  const uint8_t* first = rx_memory_[pair] + token * rx_buffer_;
  Header header;
  memcpy(&header, first, kHeaderSize);
  uint16_t count = (features_ & kMrgRxbuf) ? header.num_buffers : 1;
  if (count == 0 || count > kRxBuffers) count = 1;
  if (buffers) *buffers = count;
  uint32_t length = 0;
  for (uint16_t i = 0; i < count; ++i) {
    if (i > 0)
      while (!rx.pop(&token, &written)) pause();
    const uint8_t* data = rx_memory_[pair] + token * rx_buffer_;
    uint32_t skip = i == 0 ? kHeaderSize : 0;
    if (written > rx_buffer_) written = rx_buffer_;
    uint32_t piece = written > skip ? written - skip : 0;
    if (length + piece > size) piece = length < size ? size - length : 0;
    memcpy(out + length, data + skip, piece);
    length += piece;
    post(pair, static_cast<uint16_t>(token));
  }
  pci_.kick(static_cast<uint16_t>(2 * pair), rx);
  return length;
}

uint8_t VirtioNetDriver::control(uint8_t cls, uint8_t cmd, const void* data, uint32_t length) {
  if (!(features_ & kCtrlVq) || length > 500) return kNoAck;
  ctrl_buffer_[0] = cls;
  ctrl_buffer_[1] = cmd;
  memcpy(ctrl_buffer_ + 2, data, length);
  uint8_t* ack = ctrl_buffer_ + 508;
  *ack = kNoAck;
  Segment segs[2] = {{ctrl_buffer_, 2 + length, false}, {ack, 1, true}};
  if (!ctrl_.add(segs, 2, 0)) return kNoAck;
  uint16_t control_index = (features_ & kMq) ? static_cast<uint16_t>(2 * max_pairs()) : 2;
  pci_.kick(control_index, ctrl_);
  uint64_t token;
  uint32_t written;
  while (!ctrl_.pop(&token, &written)) pause();
  return *ack;
}

}  // namespace guest
