#include "net_link.h"

#include <string.h>

#include "arch.h"
#include "console.h"
#include "dma.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint16_t kEtherArp = 0x0806, kEtherIpv4 = 0x0800;

uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t sum16(const uint8_t* p, uint32_t n, uint32_t sum = 0) {
  for (uint32_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}
uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

}  // namespace

uint8_t payload_byte(uint32_t seq, uint32_t i) { return static_cast<uint8_t>(seq * 29 + i * 13 + 7); }

NetArgs parse_net_args(const char* arg) {
  NetArgs a;
  if (strncmp(arg, "tap-mq:", 7) == 0) a.tap = a.multiqueue = true, arg += 7;
  else if (strncmp(arg, "tap:", 4) == 0) a.tap = true, arg += 4;
  a.port = static_cast<uint16_t>(parse_number(arg, 0));
  return a;
}

Link::Link(NicPort& nic, const Addresses& addresses, uint64_t tsc_per_us)
    : nic_(nic), a_(addresses), tsc_per_us_(tsc_per_us) {
  frame_ = static_cast<uint8_t*>(dma_alloc(2048, 64));
  in_ = static_cast<uint8_t*>(dma_alloc(70000, 64));
}

bool Link::resolve_peer() {
  for (int attempt = 0; attempt < 5 && !peer_known_; ++attempt) {
    uint8_t* f = frame_;
    memset(f, 0xff, 6);
    memcpy(f + 6, nic_.mac(), 6);
    put16(f + 12, kEtherArp);
    uint8_t* arp = f + kEther;
    put16(arp, 1), put16(arp + 2, kEtherIpv4), arp[4] = 6, arp[5] = 4, put16(arp + 6, 1);
    memcpy(arp + 8, nic_.mac(), 6), memcpy(arp + 14, a_.self, 4);
    memset(arp + 18, 0, 6), memcpy(arp + 24, a_.peer, 4);
    memset(f + kEther + 28, 0, 60 - kEther - 28);
    send(f, 60, 0);
    wait_udp(nullptr, 0, 0, 500000);
  }
  return peer_known_;
}

uint32_t Link::udp_frame(uint8_t* out, const uint8_t* payload, uint32_t n, uint16_t port, bool partial) {
  memcpy(out, peer_mac_, 6);
  memcpy(out + 6, nic_.mac(), 6);
  put16(out + 12, kEtherIpv4);
  uint8_t* ip = out + kEther;
  ip[0] = 0x45, ip[1] = 0;
  put16(ip + 2, static_cast<uint16_t>(kIpv4 + kUdp + n));
  put16(ip + 4, ++ip_id_);
  put16(ip + 6, 0x4000);  // don't fragment
  ip[8] = 64, ip[9] = 17;
  put16(ip + 10, 0);
  memcpy(ip + 12, a_.self, 4), memcpy(ip + 16, a_.peer, 4);
  put16(ip + 10, static_cast<uint16_t>(~fold(sum16(ip, kIpv4))));
  uint8_t* udp = ip + kIpv4;
  put16(udp, kGuestPort), put16(udp + 2, port), put16(udp + 4, static_cast<uint16_t>(kUdp + n)), put16(udp + 6, 0);
  memcpy(udp + kUdp, payload, n);
  uint32_t pseudo = sum16(ip + 12, 8) + 17 + kUdp + n;
  uint16_t check = partial ? fold(pseudo) : static_cast<uint16_t>(~fold(sum16(udp, kUdp + n, pseudo)));
  put16(udp + 6, check == 0 && !partial ? 0xffff : check);
  return kHeaders + n;
}

bool Link::send_udp(const uint8_t* payload, uint32_t n, uint16_t port, uint16_t pair) {
  return send(frame_, udp_frame(frame_, payload, n, port), pair);
}

uint32_t Link::wait_udp(uint8_t* out, uint32_t size, uint16_t port, uint64_t timeout_us) {
  uint64_t deadline = rdtsc() + timeout_us * tsc_per_us_;
  while (rdtsc() < deadline) {
    for (uint16_t pair = 0; pair < nic_.pairs(); ++pair) {
      uint16_t buffers = 0;
      uint32_t n = nic_.poll(in_, 70000, &buffers, pair);
      if (!n) continue;
      if (buffers > max_buffers_) max_buffers_ = buffers;
      ++pair_frames_[pair & 1];
      uint32_t got = handle(in_, n, out, size, port);
      if (got) return got;
      if (port == 0 && peer_known_) return 0;
    }
    pause();
  }
  return 0;
}

bool Link::echo(uint32_t seq, uint32_t n, uint16_t port, uint16_t pair) {
  uint8_t payload[kMaxPayload];
  for (uint32_t i = 0; i < n; ++i) payload[i] = payload_byte(seq, i);
  if (!send_udp(payload, n, port, pair)) return false;
  uint8_t back[kMaxPayload];
  // A late answer to an earlier datagram is skipped: it must not pass for this one's (and
  // make every later echo one behind).
  const uint64_t deadline = rdtsc() + 2000000 * tsc_per_us_;
  for (uint64_t now = rdtsc(); now < deadline; now = rdtsc()) {
    uint32_t got = wait_udp(back, sizeof back, port, (deadline - now) / tsc_per_us_);
    if (got == n && memcmp(back, payload, n) == 0) return true;
    if (!got) return false;
  }
  return false;
}

uint32_t Link::flood(uint16_t port, uint32_t count, uint32_t size, uint64_t* microseconds) {
  char request[64];
  int n = snprint(request, sizeof request, "FLOOD %u %u", count, size);
  if (!send_udp(reinterpret_cast<const uint8_t*>(request), static_cast<uint32_t>(n), port)) return 0;
  uint8_t payload[kMaxPayload];
  uint32_t received = 0;
  uint64_t first = 0, last = 0;
  for (;;) {
    uint32_t got = wait_udp(payload, sizeof payload, port, 1000000);
    if (!got || (got >= 3 && memcmp(payload, "END", 3) == 0)) break;
    last = rdtsc();
    if (!received++) first = last;
  }
  *microseconds = received > 1 ? (last - first) / tsc_per_us_ : 0;
  return received;
}

uint32_t Link::handle(const uint8_t* f, uint32_t n, uint8_t* out, uint32_t size, uint16_t port) {
  if (n < kEther) return 0;
  uint16_t type = be16(f + 12);
  if (type == kEtherArp && n >= kEther + 28) {
    const uint8_t* arp = f + kEther;
    if (be16(arp + 6) == 2 && memcmp(arp + 14, a_.peer, 4) == 0) {
      memcpy(peer_mac_, arp + 8, 6);
      peer_known_ = true;
    } else if (be16(arp + 6) == 1 && memcmp(arp + 24, a_.self, 4) == 0) {
      uint8_t reply[60] = {};
      memcpy(reply, arp + 8, 6);
      memcpy(reply + 6, nic_.mac(), 6);
      put16(reply + 12, kEtherArp);
      uint8_t* r = reply + kEther;
      put16(r, 1), put16(r + 2, kEtherIpv4), r[4] = 6, r[5] = 4, put16(r + 6, 2);
      memcpy(r + 8, nic_.mac(), 6), memcpy(r + 14, a_.self, 4), memcpy(r + 18, arp + 8, 6), memcpy(r + 24, arp + 14, 4);
      send(reply, sizeof reply, 0);
    }
    return 0;
  }
  if (type != kEtherIpv4 || n < kHeaders || port == 0) return 0;
  const uint8_t* ip = f + kEther;
  uint32_t ihl = (ip[0] & 15) * 4u;
  if (ip[9] != 17 || memcmp(ip + 16, a_.self, 4) != 0 || n < kEther + ihl + kUdp) return 0;
  const uint8_t* udp = ip + ihl;
  if (be16(udp) != port || be16(udp + 2) != kGuestPort) return 0;
  uint32_t length = be16(udp + 4) >= kUdp ? be16(udp + 4) - kUdp : 0;
  if (kEther + ihl + kUdp + length > n) return 0;
  if (length > size) length = size;
  memcpy(out, udp + kUdp, length);
  return length;
}

}  // namespace guest
