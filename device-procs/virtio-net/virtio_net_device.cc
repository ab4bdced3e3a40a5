#include "device-procs/virtio-net/virtio_net_device.h"

#include <linux/if_tun.h>
#include <sys/epoll.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "vhost-user/guest_buffers.h"

namespace bulkhead::device {

using vhost_user::Chain;
using vhost_user::GuestBuffers;
using vhost_user::Queue;
namespace nf = net_feature;

namespace {

constexpr size_t kHeader = sizeof(VirtioNetHeader);
constexpr uint16_t kStatusLinkUp = 1;
// Control queue (virtio 1.x, 5.1.6.5).
constexpr uint8_t kCtrlRx = 0, kCtrlMac = 1, kCtrlMq = 4;
constexpr uint8_t kRxPromisc = 0, kRxAllMulti = 1, kMacTableSet = 0, kMacAddrSet = 1, kMqPairsSet = 0;
constexpr uint8_t kAckOk = 0, kAckError = 1;
constexpr uint32_t kMaxMacTable = 64;
// The most buffers one received packet may take (Linux's own limit for mergeable buffers).
constexpr size_t kMaxMergedBuffers = 256;

uint16_t le16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

VirtioNetDevice::VirtioNetDevice(EventLoop& loop, std::unique_ptr<NetBackend> backend, Options options)
    : loop_(loop), backend_(std::move(backend)), pairs_(options.queue_pairs), mtu_(options.mtu), options_mac_(options.mac), mac_(options.mac) {
  if (pairs_ == 0 || pairs_ > kMaxPairs) throw InputError("virtio-net takes 1 to 16 queue pairs");
  if (backend_->queues() != 1 && backend_->queues() != pairs_)
    throw InputError("the network back-end has " + std::to_string(backend_->queues()) + " queues for " +
                     std::to_string(pairs_) + " queue pairs");
  host_.resize(backend_->queues());
  held_.resize(pairs_);
  for (HostQueue& state : host_) state.frame.resize(kHeader + kMaxFrame);
  for (size_t q = 0; q < backend_->queues(); ++q)
    loop_.add(backend_->fd(q), EPOLLIN, [this, q](uint32_t events) {
      if (events & EPOLLOUT) resume_transmit(q);
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) receive(q);
    });
}

uint64_t VirtioNetDevice::features() const {
  uint64_t f = vhost_user::feature::kVersion1 | vhost_user::feature::kIndirectDesc | vhost_user::feature::kEventIdx |
               nf::kMac | nf::kStatus | nf::kMtu | nf::kMrgRxbuf | nf::kCtrlVq | nf::kCtrlRx;
  if (pairs_ > 1) f |= nf::kMq;
  // Checksum and segmentation offloads only where the host end carries the header through (a
  // tap); user-mode networking wants whole, checksummed frames.
  if (backend_->offloads())
    f |= nf::kCsum | nf::kGuestCsum | nf::kHostTso4 | nf::kHostTso6 | nf::kHostEcn | nf::kGuestTso4 | nf::kGuestTso6 |
         nf::kGuestEcn;
  return f;
}

std::vector<uint8_t> VirtioNetDevice::config() const {
  std::vector<uint8_t> c(12, 0);
  std::memcpy(c.data(), mac_.data(), 6);
  uint16_t status = kStatusLinkUp, pairs = static_cast<uint16_t>(pairs_);
  std::memcpy(&c[6], &status, 2);
  std::memcpy(&c[8], &pairs, 2);
  std::memcpy(&c[10], &mtu_, 2);
  return c;
}

void VirtioNetDevice::set_features(uint64_t acked) {
  acked_ = acked;
  if (!backend_->offloads()) return;
  // What the tap may hand us for the guest: only what the guest takes.
  unsigned tun = 0;
  if (acked & nf::kGuestCsum) {
    tun |= TUN_F_CSUM;
    if (acked & nf::kGuestTso4) tun |= TUN_F_TSO4;
    if (acked & nf::kGuestTso6) tun |= TUN_F_TSO6;
    if (acked & nf::kGuestEcn) tun |= TUN_F_TSO_ECN;
  }
  backend_->set_guest_offloads(tun);
}

Queue* VirtioNetDevice::queue(uint32_t index) const { return server_ ? &server_->queue(index) : nullptr; }

void VirtioNetDevice::process(Queue& q) {
  if (q.index() > control_queue()) return;  // beyond the queues the driver negotiated
  if (q.index() == control_queue()) {
    while (auto chain = q.ring().pop(q.memory())) control(q, std::move(*chain));
    q.flush_notifications();
    return;
  }
  if (q.index() % 2 == 1) {  // transmit queue of pair index / 2
    size_t host_queue = (q.index() / 2) % backend_->queues();
    // While the host end is congested, the guest's frames stay on its ring: back-pressure.
    while (!backend_->congested(host_queue)) {
      std::optional<Chain> chain = q.ring().pop(q.memory());
      if (!chain) break;
      transmit(q, std::move(*chain));
    }
    if (backend_->congested(host_queue)) set_congested(host_queue, true);
    q.flush_notifications();
    return;
  }
  // A receive queue got buffers: frames waiting for them can go now.
  size_t host_queue = (q.index() / 2) % backend_->queues();
  watch(host_queue, true);
  receive(host_queue);
}

bool VirtioNetDevice::available_is_work(const Queue& q) const {
  if (q.index() >= control_queue()) return true;  // commands
  // Frames to send are work unless the host end is congested (its EPOLLOUT wakes the device).
  if (q.index() % 2 == 1) return !host_[(q.index() / 2) % backend_->queues()].congested;
  // Receive buffers are work only while frames wait for them.
  for (size_t host = 0; host < host_.size(); ++host)
    if (host_[host].length && 2 * (host % std::max(active_pairs_, 1u)) == q.index()) return true;
  return false;
}

void VirtioNetDevice::resubmit(Queue& q, std::vector<Chain> chains) {
  // Transmissions an earlier process may not have finished are sent (again: a duplicate frame
  // is what a network may do anyway); receive buffers are simply buffers again.
  for (Chain& chain : chains) {
    if (q.index() == control_queue()) control(q, std::move(chain));
    else if (q.index() % 2 == 1) transmit(q, std::move(chain));
    else if (q.index() < control_queue()) held(q).push_back(std::move(chain));
  }
  q.flush_notifications();
}

void VirtioNetDevice::transmit(Queue& q, Chain chain) {
  uint16_t head = chain.head;
  GuestBuffers buffers(std::move(chain.readable));
  auto done = [&] { q.complete(head, 0); };
  // The header may be split across descriptors anywhere (DPDK CVE-2022-2132): it is gathered
  // into a copy of our own, and a chain no longer than it carries no frame.
  if (chain.readable_bytes <= kHeader) return ++counters_.tx_short, done();
  uint64_t frame_bytes = chain.readable_bytes - kHeader;
  if (frame_bytes > kMaxFrame) return ++counters_.tx_oversize, done();
  VirtioNetHeader header{};
  buffers.read(0, &header, kHeader);
  bool offloaded = (header.flags & kNetHeaderNeedsCsum) || header.gso_type != kGsoNone;
  bool may_offload = (acked_ & nf::kCsum) && backend_->offloads();
  if (offloaded && !may_offload) return ++counters_.tx_bad_header, done();
  std::vector<iovec> iov;
  if (backend_->offloads()) {
    header.num_buffers = 0;
    iov.push_back({&header, kHeader});
  }
  std::vector<iovec> frame = buffers.slice(kHeader).iovecs();
  std::vector<uint8_t> bounce;
  if (frame.size() + 1 > IOV_MAX) {  // a chain of more pieces than writev takes: one copy
    bounce.resize(frame_bytes);
    buffers.read(kHeader, bounce.data(), bounce.size());
    frame = {{bounce.data(), bounce.size()}};
  }
  iov.insert(iov.end(), frame.begin(), frame.end());
  size_t host_queue = (q.index() / 2) % backend_->queues();
  if (backend_->send(host_queue, iov)) {
    ++counters_.tx_packets;
    counters_.tx_bytes += frame_bytes;
  } else {
    ++counters_.tx_refused;
  }
  done();
}

bool VirtioNetDevice::wanted(const uint8_t* frame, size_t length) const {
  if (!filtering_ || promiscuous_ || length < 6) return true;
  std::array<uint8_t, 6> dst;
  std::memcpy(dst.data(), frame, 6);
  if (dst == mac_) return true;
  if (dst[0] & 1) {  // group address: broadcast or multicast
    bool broadcast = std::all_of(dst.begin(), dst.end(), [](uint8_t b) { return b == 0xff; });
    return broadcast || all_multicast_ || multicast_.count(dst);
  }
  return unicast_.count(dst) > 0;
}

void VirtioNetDevice::watch(size_t q, bool on) {
  if (host_[q].watching == on) return;
  host_[q].watching = on;
  update_events(q);
}

void VirtioNetDevice::set_congested(size_t q, bool on) {
  if (host_[q].congested == on) return;
  host_[q].congested = on;
  update_events(q);
}

void VirtioNetDevice::update_events(size_t q) {
  loop_.modify(backend_->fd(q), (host_[q].watching ? uint32_t{EPOLLIN} : 0u) | (host_[q].congested ? uint32_t{EPOLLOUT} : 0u));
}

void VirtioNetDevice::resume_transmit(size_t q) {
  if (!backend_->flush(q)) return;  // still full: EPOLLOUT again
  set_congested(q, false);
  for (uint32_t pair = 0; pair < pairs_; ++pair)
    if (pair % backend_->queues() == q)
      if (Queue* tx = queue(2 * pair + 1); tx && tx->ready()) process(*tx);
}

bool VirtioNetDevice::receive(size_t q) {
  HostQueue& state = host_[q];
  Queue* rx = queue(2 * static_cast<uint32_t>(q % std::max(active_pairs_, 1u)));
  bool moved = false;
  for (int frames = 0; frames < 256; ++frames) {  // a bounded batch, so transmits are served too
    if (!state.length) {
      size_t header = backend_->offloads() ? 0 : kHeader;  // a plain frame gets a header put before it
      size_t n = backend_->receive(q, {state.frame.data() + header, state.frame.size() - header});
      if (!n) break;
      if (header) std::memset(state.frame.data(), 0, kHeader);
      else if (n < kHeader) continue;
      state.length = n + header;
      if (!wanted(state.frame.data() + kHeader, state.length - kHeader)) {
        ++counters_.rx_filtered;
        state.length = 0;
        continue;
      }
    }
    if (!rx || !rx->ready()) {
      watch(q, false);  // until the driver starts the queue
      break;
    }
    if (!deliver(*rx, state)) {
      if (rx->want_kicks()) continue;  // buffers came meanwhile
      watch(q, false);  // until the driver gives buffers (its kick re-enables this)
      break;
    }
    moved = true;
  }
  if (rx && moved) rx->flush_notifications();
  return moved;
}

// Copies the waiting frame into as many buffers as it needs (one unless MRG_RXBUF), writing the
// header with num_buffers first and publishing every buffer at once (QEMU CVE-2021-3748).
bool VirtioNetDevice::deliver(Queue& rx, HostQueue& state) {
  bool mergeable = acked_ & nf::kMrgRxbuf;
  std::vector<Chain>& buffers_held = held(rx);
  uint64_t room = 0;
  for (const Chain& c : buffers_held) room += c.writable_bytes;
  while (room < state.length) {
    // One buffer must hold it without MRG_RXBUF, and no more than Linux takes with it: this
    // frame cannot go (the buffers wait for the next one).
    if ((!mergeable && !buffers_held.empty()) || buffers_held.size() >= kMaxMergedBuffers) {
      ++counters_.rx_too_big;
      state.length = 0;
      return true;
    }
    std::optional<Chain> chain = rx.ring().pop(rx.memory());
    if (!chain) return false;
    room += chain->writable_bytes;
    buffers_held.push_back(std::move(*chain));
  }
  // The buffers this frame fills; any beyond them stay held for the next one.
  size_t count = 0;
  for (uint64_t filled = 0; filled < state.length; ++count) filled += buffers_held[count].writable_bytes;
  VirtioNetHeader header;
  std::memcpy(&header, state.frame.data(), kHeader);
  header.num_buffers = static_cast<uint16_t>(count);
  std::memcpy(state.frame.data(), &header, kHeader);
  std::vector<vhost_user::SplitQueue::Used> used;
  size_t at = 0;
  for (size_t i = 0; i < count; ++i) {
    GuestBuffers buffers(std::move(buffers_held[i].writable));
    size_t n = buffers.write(0, state.frame.data() + at, state.length - at);
    at += n;
    used.push_back({buffers_held[i].head, static_cast<uint32_t>(n)});
  }
  buffers_held.erase(buffers_held.begin(), buffers_held.begin() + static_cast<long>(count));
  rx.complete_all(used);
  ++counters_.rx_packets;
  counters_.rx_bytes += state.length - kHeader;
  state.length = 0;
  return true;
}

bool VirtioNetDevice::poll_completions() {
  bool moved = false;
  for (size_t q = 0; q < host_.size(); ++q)
    if (host_[q].watching || host_[q].length) moved |= receive(q);
  return moved;
}

void VirtioNetDevice::control(Queue& q, Chain chain) {
  filtering_ = true;  // the driver speaks to us directly: its filters are ours to apply
  uint16_t head = chain.head;
  GuestBuffers in(std::move(chain.readable)), out(std::move(chain.writable));
  std::vector<uint8_t> command(std::min<uint64_t>(in.size(), 2 + 8 + 2 * (4 + 6 * kMaxMacTable)));
  in.read(0, command.data(), command.size());
  uint8_t ack = kAckError;
  auto data = [&](size_t n) { return command.size() >= 2 + n; };
  if (command.size() >= 2 && out.size() >= 1) {
    uint8_t cls = command[0], cmd = command[1];
    const uint8_t* d = command.data() + 2;
    if (cls == kCtrlRx && (cmd == kRxPromisc || cmd == kRxAllMulti) && data(1)) {
      (cmd == kRxPromisc ? promiscuous_ : all_multicast_) = d[0] != 0;
      ack = kAckOk;
    } else if (cls == kCtrlMac && cmd == kMacAddrSet && data(6)) {
      std::memcpy(mac_.data(), d, 6);
      ack = kAckOk;
    } else if (cls == kCtrlMac && cmd == kMacTableSet && data(4)) {
      // Two tables, each a 32-bit count and that many addresses: unicast, then multicast.
      std::set<std::array<uint8_t, 6>> tables[2];
      size_t at = 0, length = command.size() - 2;
      bool ok = true;
      for (auto& table : tables) {
        uint32_t entries;
        if (at + 4 > length) { ok = false; break; }
        std::memcpy(&entries, d + at, 4);
        at += 4;
        if (entries > kMaxMacTable || at + 6ull * entries > length) { ok = false; break; }
        for (uint32_t i = 0; i < entries; ++i, at += 6) {
          std::array<uint8_t, 6> mac;
          std::memcpy(mac.data(), d + at, 6);
          table.insert(mac);
        }
      }
      if (ok) {
        unicast_ = tables[0];
        multicast_ = tables[1];
        ack = kAckOk;
      }
    } else if (cls == kCtrlMq && cmd == kMqPairsSet && data(2) && (acked_ & nf::kMq)) {
      uint16_t n = le16(d);
      if (n >= 1 && n <= pairs_) {
        active_pairs_ = n;
        ack = kAckOk;
      }
    }
  }
  if (ack != kAckOk) ++counters_.ctrl_errors;
  size_t written = out.size() ? out.write(0, &ack, 1) : 0;
  q.complete(head, static_cast<uint32_t>(written));
}

void VirtioNetDevice::reset() {
  for (HostQueue& state : host_) state.length = 0;  // what a congested host end holds still goes out
  for (auto& buffers : held_) buffers.clear();
  filtering_ = promiscuous_ = all_multicast_ = false;
  mac_ = options_mac_;
  unicast_.clear();
  multicast_.clear();
  active_pairs_ = 1;
  for (size_t q = 0; q < host_.size(); ++q) watch(q, true);
}

}  // namespace bulkhead::device
