// Network scenarios on a virtio-net NIC. The guest speaks just enough Ethernet, ARP, IPv4 and
// UDP to reach a UDP echo server on the host: through user-mode networking (the guest is
// 10.0.2.15, the gateway 10.0.2.2 is the host's loopback) or through a tap (the guest is
// 10.0.3.2, the tap's host end 10.0.3.1). The host test runs the echo server.
//   net=PORT | net=tap:PORT | net=tap-mq:PORT   echo, merged buffers, control queue, offloads, queue pairs
//   net                                          (no echo server) link, ARP and the control queue
//   net-hostile=PORT                             frames Linux never sends, then an echo
//   bench-net=PORT | bench-net=tap:PORT          round trips to PORT, a stream to PORT+1
//   net-verify=PORT[,COUNT]                      sequenced echoes while the host kills the NIC's process
#include <string.h>

#include "arch.h"
#include "console.h"
#include "dma.h"
#include "drivers/virtio_net.h"
#include "net_link.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint8_t kCtrlRx = 0, kCtrlMac = 1, kCtrlMq = 4;

// The virtio-net driver as the link sees it: frames behind a zero header, received into
// merged buffers.
class VirtioNetPort : public NicPort {
 public:
  explicit VirtioNetPort(VirtioNetDriver& nic, uint64_t tsc_per_us) : nic_(nic), tsc_per_us_(tsc_per_us) {}
  const uint8_t* mac() const override { return nic_.mac(); }
  bool send(const void* frame, uint32_t length, uint16_t pair) override { return nic_.send(frame, length, {}, pair); }
  uint32_t poll(uint8_t* out, uint32_t size, uint16_t* buffers, uint16_t pair) override {
    return nic_.receive(out, size, 0, tsc_per_us_, buffers, pair);
  }
  int pairs() const override { return nic_.pairs(); }

 private:
  VirtioNetDriver& nic_;
  uint64_t tsc_per_us_;
};

void format_mac(const uint8_t* mac, char* out) {
  snprint(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
}

}  // namespace

bool scenario_net(const char* arg, Context& context) {
  NetArgs args = parse_net_args(arg);
  VirtioNetDriver nic;
  uint64_t wanted = VirtioNetDriver::kMrgRxbuf | VirtioNetDriver::kCtrlVq | VirtioNetDriver::kCtrlRx |
                    (args.tap ? VirtioNetDriver::kCsum : 0) | (args.multiqueue ? VirtioNetDriver::kMq : 0);
  // Small receive buffers: a full-size frame takes several, which the device must merge.
  if (!nic.init(wanted, 512)) {
    print("BH-RESULT net error=no-device\n");
    return false;
  }
  Checks checks;
  char mac[18];
  format_mac(nic.mac(), mac);
  checks.expect(nic.status() & 1, "link-up");
  checks.expect((nic.features() & VirtioNetDriver::kMrgRxbuf) && (nic.features() & VirtioNetDriver::kCtrlVq), "features");
  VirtioNetPort port(nic, context.tsc_per_us);
  Link link(port, args.addresses(), context.tsc_per_us);
  checks.expect(link.resolve_peer(), "arp");

  constexpr uint32_t kSizes[] = {1, 60, 200, 511, 512, 1000, 1400, kMaxPayload};
  constexpr int kEchoes = 48;
  int echoed = 0;
  for (int i = 0; i < kEchoes && checks.ok && args.port; ++i)
    echoed += link.echo(static_cast<uint32_t>(i), kSizes[i % 8], args.port);
  checks.expect(!args.port || echoed == kEchoes, "echo");
  checks.expect(!args.port || link.max_buffers() >= 3, "merged-buffers");

  // The control queue: receive modes and address filters, and what it must refuse.
  int ctrl_ok = 0, ctrl_refused = 0;
  uint8_t on = 1, off = 0;
  ctrl_ok += nic.control(kCtrlRx, 0, &on, 1) == VirtioNetDriver::kAckOk;   // promiscuous
  ctrl_ok += nic.control(kCtrlRx, 1, &off, 1) == VirtioNetDriver::kAckOk;  // all-multicast off
  uint8_t tables[8] = {};                                                  // no unicast, no multicast
  ctrl_ok += nic.control(kCtrlMac, 0, tables, sizeof tables) == VirtioNetDriver::kAckOk;
  uint8_t lying[8] = {0xff, 0xff, 0xff, 0x7f};  // 2^31 unicast entries in 8 bytes
  ctrl_refused += nic.control(kCtrlMac, 0, lying, sizeof lying) == 1;
  ctrl_refused += nic.control(0x7e, 0, &on, 1) == 1;  // no such class
  ctrl_refused += nic.control(kCtrlRx, 0, nullptr, 0) == 1;  // no data
  ctrl_ok += nic.control(kCtrlRx, 0, &off, 1) == VirtioNetDriver::kAckOk;  // filtering by address now
  checks.expect(ctrl_ok == 4 && ctrl_refused == 3, "control-queue");
  checks.expect(!args.port || link.echo(100, 300, args.port), "echo-filtered");

  bool partial = true;
  if (args.tap) {  // a datagram whose checksum the host end completes
    checks.expect(nic.features() & VirtioNetDriver::kCsum, "csum-offered");
    uint8_t payload[200];
    for (uint32_t i = 0; i < sizeof payload; ++i) payload[i] = payload_byte(200, i);
    VirtioNetDriver::Header header{};
    header.flags = VirtioNetDriver::kNeedsCsum;
    header.csum_start = kEther + kIpv4;
    header.csum_offset = 6;
    uint32_t n = link.udp_frame(link.frame(), payload, sizeof payload, args.port, true);
    nic.send(link.frame(), n, header);
    uint8_t back[256];
    partial = link.wait_udp(back, sizeof back, args.port, 2000000) == sizeof payload && memcmp(back, payload, 200) == 0;
    checks.expect(partial, "partial-checksum");
  }
  int mq_echoed = 0;
  if (args.multiqueue) {  // both queue pairs, each through its own tap queue
    uint8_t pairs[2] = {2, 0};
    checks.expect(nic.pairs() == 2 && nic.control(kCtrlMq, 0, pairs, 2) == VirtioNetDriver::kAckOk, "mq-pairs-set");
    for (int i = 0; i < 16; ++i) mq_echoed += link.echo(300 + i, 100 + i, args.port, static_cast<uint16_t>(i % 2));
    checks.expect(mq_echoed == 16, "mq-echo");
  }
  print("BH-RESULT net mac=%s mtu=%u echoed=%d/%d merged_max=%u ctrl=%d/%d partial=%d mq=%d rx_pairs=%u/%u "
        "failed_check=\"%s\" %s\n",
        mac, nic.mtu(), echoed, kEchoes, link.max_buffers(), ctrl_ok, ctrl_refused, partial, mq_echoed,
        link.frames_on(0), link.frames_on(1), checks.first_failure, checks.ok ? "ok" : "FAILED");
  return checks.ok;
}

// What a hostile driver may put on a transmit ring; the device must drop each (and count it)
// and carry on, and a header split anywhere must still work.
bool scenario_net_hostile(const char* arg, Context& context) {
  uint16_t port = static_cast<uint16_t>(parse_number(arg, 0));
  VirtioNetDriver nic;
  if (!port || !nic.init(VirtioNetDriver::kMrgRxbuf, 2048)) {
    print("BH-RESULT net-hostile error=%s\n", port ? "no-device" : "no-port");
    return false;
  }
  VirtioNetPort nic_port(nic, context.tsc_per_us);
  Link link(nic_port, kUserAddresses, context.tsc_per_us);
  bool arp = link.resolve_peer();
  auto* header = static_cast<VirtioNetDriver::Header*>(dma_alloc(sizeof(VirtioNetDriver::Header), 16));
  memset(header, 0, sizeof *header);
  uint8_t* frame = link.frame();
  uint8_t payload[300];
  auto prepare = [&](uint32_t seq, uint32_t n) {
    for (uint32_t i = 0; i < n; ++i) payload[i] = payload_byte(seq, i);
    return link.udp_frame(frame, payload, n, port);
  };
  auto echoed = [&](uint32_t n) {
    uint8_t back[300];
    return link.wait_udp(back, sizeof back, port, 500000) == n && memcmp(back, payload, n) == 0;
  };

  // 1. A chain shorter than the header.
  Segment short_chain{header, 4, false};
  nic.send_raw(&short_chain, 1);
  // 2. The header split in three and the frame in five pieces: a valid datagram.
  uint32_t n = prepare(1, 250);
  auto* h = reinterpret_cast<uint8_t*>(header);
  Segment split[8] = {{h, 5, false},          {h + 5, 3, false},       {h + 8, 4, false},
                      {frame, 7, false},      {frame + 7, 30, false},  {frame + 37, 1, false},
                      {frame + 38, 100, false}, {frame + 138, n - 138, false}};
  nic.send_raw(split, 8);
  bool split_echo = echoed(250);
  // 3. Offloads the driver did not negotiate: a checksum to finish, a segmentation.
  n = prepare(2, 100);
  VirtioNetDriver::Header csum{};
  csum.flags = VirtioNetDriver::kNeedsCsum;
  csum.csum_start = kEther + kIpv4;
  csum.csum_offset = 6;
  nic.send(frame, n, csum);
  bool csum_echo = echoed(100);
  VirtioNetDriver::Header gso{};
  gso.gso_type = 1;  // TCPv4
  gso.gso_size = 100;
  nic.send(frame, n, gso);
  bool gso_echo = echoed(100);
  // 4. A frame beyond the largest there is (64 KiB of IP and an Ethernet header).
  auto* big = static_cast<uint8_t*>(dma_alloc(70000, 64));
  memset(big, 0x5a, 70000);
  Segment oversize[2] = {{header, sizeof *header, false}, {big, 70000, false}};
  nic.send_raw(oversize, 2);
  // 5. Still alive.
  n = prepare(3, 64);
  bool after = link.echo(3, 64, port);
  bool ok = arp && split_echo && !csum_echo && !gso_echo && after;
  print("BH-RESULT net-hostile arp=%d split_echo=%d csum_echo=%d gso_echo=%d after=%d %s\n", arp, split_echo, csum_echo,
        gso_echo, after, ok ? "ok" : "FAILED");
  return ok;
}

// Round trips of small datagrams to PORT (the echo server), then a stream of full-size ones
// to PORT+1 (a sink), pipelined as deep as the ring allows.
// COUNT (default 2000) sequenced datagrams of varying size to the echo server, one at a time.
// An echo that does not come within 100 ms is a frame lost with a device process that died:
// the same datagram is sent again. Every echo must match what was sent; late and duplicate
// echoes (a transmission the restarted process redid) are told apart by their sequence number.
bool scenario_net_verify(const char* arg, Context& context) {
  char target[32] = {};  // the part before ",COUNT"
  int at = 0;
  for (; arg[at] && arg[at] != ',' && at < 31; ++at) target[at] = arg[at];
  NetArgs args = parse_net_args(target);
  uint32_t count = static_cast<uint32_t>(arg[at] == ',' ? parse_number(arg + at + 1, 2000) : 2000);
  VirtioNetDriver nic;
  if (!args.port || !nic.init(VirtioNetDriver::kMrgRxbuf, 2048)) {
    print("BH-RESULT net-verify error=%s\n", args.port ? "no-device" : "no-port");
    return false;
  }
  VirtioNetPort nic_port(nic, context.tsc_per_us);
  Link link(nic_port, args.addresses(), context.tsc_per_us);
  if (!link.resolve_peer()) {
    print("BH-RESULT net-verify error=no-arp-reply\n");
    return false;
  }
  constexpr uint64_t kWaitUs = 100000;
  constexpr int kAttempts = 100;
  uint32_t resent = 0, corrupted = 0, failed = 0;
  uint8_t payload[kMaxPayload], back[kMaxPayload];
  for (uint32_t seq = 1; seq <= count; ++seq) {
    uint32_t n = 64 + seq % 1024;
    memcpy(payload, &seq, 4);
    for (uint32_t i = 4; i < n; ++i) payload[i] = payload_byte(seq, i);
    bool echoed = false;
    for (int attempt = 0; attempt < kAttempts && !echoed; ++attempt) {
      if (attempt) ++resent;
      if (!link.send_udp(payload, n, args.port)) break;
      const uint64_t deadline = rdtsc() + kWaitUs * context.tsc_per_us;
      for (uint64_t now = rdtsc(); now < deadline && !echoed; now = rdtsc()) {
        uint32_t got = link.wait_udp(back, sizeof back, args.port, (deadline - now) / context.tsc_per_us);
        if (!got) break;
        uint32_t back_seq;
        memcpy(&back_seq, back, 4);
        if (got >= 4 && back_seq != seq) continue;  // an earlier datagram's late or second echo
        if (got != n || memcmp(back, payload, n) != 0) ++corrupted;
        else echoed = true;
      }
    }
    failed += !echoed;
    if (seq % 100 == 0) print("BH-PROGRESS net-verify seq=%u\n", seq);
  }
  bool ok = corrupted == 0 && failed == 0;
  print("BH-RESULT net-verify %s datagrams=%u resent=%u corrupted=%u failed=%u\n", ok ? "ok" : "failed", count, resent,
        corrupted, failed);
  return ok;
}

bool scenario_bench_net(const char* arg, Context& context) {
  NetArgs args = parse_net_args(arg);
  VirtioNetDriver nic;
  if (!args.port || !nic.init(VirtioNetDriver::kMrgRxbuf, 2048)) {
    print("BH-RESULT bench-net error=%s\n", args.port ? "no-device" : "no-port");
    return false;
  }
  VirtioNetPort nic_port(nic, context.tsc_per_us);
  Link link(nic_port, args.addresses(), context.tsc_per_us);
  if (!link.resolve_peer()) {
    print("BH-RESULT bench-net error=no-arp-reply\n");
    return false;
  }
  constexpr int kRoundTrips = 2000, kStream = 20000, kWarmup = 50;
  int lost = 0;
  for (int i = 0; i < kWarmup; ++i) lost += !link.echo(static_cast<uint32_t>(i), 64, args.port);
  uint64_t start = rdtsc();
  for (int i = 0; i < kRoundTrips; ++i) lost += !link.echo(static_cast<uint32_t>(i), 64, args.port);
  uint64_t rtt_ns = (rdtsc() - start) * 1000 / context.tsc_per_us / kRoundTrips;

  // Frames in flight must stay untouched until reaped: one per ring slot.
  constexpr int kSlots = 128;
  auto* frames = static_cast<uint8_t*>(dma_alloc(static_cast<size_t>(kSlots) * 2048, 64));
  uint8_t payload[kMaxPayload];
  for (uint32_t i = 0; i < kMaxPayload; ++i) payload[i] = payload_byte(0, i);
  uint32_t length = 0;
  for (int s = 0; s < kSlots; ++s) length = link.udp_frame(frames + s * 2048, payload, kMaxPayload, args.port + 1);
  int sent = 0, done = 0;
  start = rdtsc();
  while (done < kStream) {
    while (sent < kStream && sent - done < kSlots - 1 && nic.submit(frames + (sent % kSlots) * 2048, length)) ++sent;
    done += nic.reap();
    pause();
  }
  uint64_t stream_us = (rdtsc() - start) / context.tsc_per_us;
  uint64_t pps = stream_us ? kStream * 1000000ull / stream_us : 0;
  // Host to guest: a flood of full-size datagrams the guest receives as fast as they come.
  uint64_t rx_us = 0;
  uint32_t received = link.flood(args.port, kStream, kMaxPayload, &rx_us);
  uint64_t rx_pps = rx_us ? (received - 1) * 1000000ull / rx_us : 0;
  print("BH-RESULT bench-net rtt_ns=%lu lost=%d stream_pps=%lu stream_mbps=%lu rx_pps=%lu rx_mbps=%lu rx_received=%u "
        "frame_bytes=%u\n",
        rtt_ns, lost, pps, pps * length * 8 / 1000000, rx_pps, rx_pps * length * 8 / 1000000, received, length);
  return lost == 0;
}

}  // namespace guest
