// e1000 scenarios: the 82540EM (device-procs/e1000) as Linux's driver programs it, the UDP
// echo through its host end (net_link.h), QEMU's e1000 bugs done on purpose, and the
// benchmark.
//   e1000[=PORT]          EEPROM, PHY, link, INTx, the echo (with PORT), a burst and the counters
//   e1000-hostile=PORT    descriptor loops, bad offloads, oversize packets, bad indexes, DMA into
//                         its own registers and outside RAM, rings out of range; then an echo
//   bench-e1000=[tap:]PORT  register access cost, round trips to PORT, a stream to PORT+1, a flood back
#include <string.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "dma.h"
#include "drivers/e1000.h"
#include "drivers/ioapic.h"
#include "net_link.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint32_t kStatus = 0x8, kIcr = 0xc0, kIcs = 0xc8, kIms = 0xd0, kImc = 0xd8, kTdbal = 0x3800, kTdh = 0x3810,
                   kTdt = 0x3818, kRdbal = 0x2800, kEerd = 0x14, kGptc = 0x4080, kGprc = 0x4074, kTpt = 0x40d4,
                   kTsctfc = 0x40fc;
constexpr uint32_t kIntLsc = 1u << 2;
constexpr uint8_t kIntxVector = 0x61;
constexpr uint8_t kCmdEop = 0x01, kCmdRs = 0x08, kCmdDext = 0x20, kCmdTse = 0x04;

uint64_t intx_count;
void on_intx() { __atomic_add_fetch(&intx_count, 1, __ATOMIC_RELAXED); }
uint64_t intx() { return __atomic_load_n(&intx_count, __ATOMIC_RELAXED); }

class E1000Port : public NicPort {
 public:
  explicit E1000Port(E1000Driver& nic) : nic_(nic) {}
  const uint8_t* mac() const override { return nic_.mac(); }
  bool send(const void* frame, uint32_t length, uint16_t) override {
    // The frame must stay put until the device has read it: copy it to a buffer of ours.
    memcpy(buffer_, frame, length);
    return nic_.send(buffer_, length);
  }
  uint32_t poll(uint8_t* out, uint32_t size, uint16_t* buffers, uint16_t) override {
    *buffers = 1;
    return nic_.receive(out, size);
  }

 private:
  E1000Driver& nic_;
  uint8_t* buffer_ = static_cast<uint8_t*>(dma_alloc(2048, 64));
};

bool wait_for(bool (*done)(), uint64_t us, uint64_t tsc_per_us) {
  uint64_t end = rdtsc() + us * tsc_per_us;
  while (!done())
    if (rdtsc() > end) return false;
    else pause();
  return true;
}

}  // namespace

bool scenario_e1000(const char* arg, Context& context) {
  uint16_t port = static_cast<uint16_t>(parse_number(arg, 0));
  E1000Driver nic;
  if (!nic.init()) {
    print("BH-RESULT e1000 error=no-device\n");
    return false;
  }
  Checks c;
  const PciFunction& fn = nic.function();
  c.expect(pci_read32(fn, 0x08) >> 8 == 0x020000 && pci_read8(fn, 0x3d) == 1, "pci-class-and-pin");

  // The EEPROM: Linux's bit-banged reads and EERD agree, and the 64 words sum to 0xBABA.
  uint16_t sum = 0;
  bool eerd_agrees = true;
  for (uint8_t w = 0; w < 64; ++w) {
    uint16_t word = nic.eeprom_microwire(w);
    sum = static_cast<uint16_t>(sum + word);
    if (w < 16) eerd_agrees &= nic.eeprom_eerd(w) == word;
  }
  c.expect(sum == 0xbaba, "eeprom-checksum");
  c.expect(eerd_agrees, "eerd");

  // The PHY: the M88E1011's IDs at address 1, a link, and an error for another address.
  bool error = false, other_error = false;
  uint32_t phy_id = static_cast<uint32_t>(nic.phy_read(1, 2, &error)) << 16 | nic.phy_read(1, 3, &error);
  nic.phy_read(2, 1, &other_error);
  bool phy_link = nic.phy_read(1, 1, &error) & 4;
  c.expect(!error && (phy_id & 0xfffffff0) == 0x01410c20, "phy-id");
  c.expect(other_error, "phy-address-error");
  c.expect(phy_link && nic.link_up() && (nic.reg(kStatus) & 0x80), "link-1000");

  // INTx: a cause set through ICS interrupts once unmasked; reading ICR clears it and the line.
  uint8_t gsi = pci_read8(fn, 0x3c);
  set_vector_handler(kIntxVector, on_intx);
  ioapic_route(gsi, kIntxVector, true, static_cast<uint8_t>(apic_id()));
  nic.set(kImc, ~0u);
  (void)nic.reg(kIcr);
  nic.set(kIcs, kIntLsc);
  uint64_t before = intx();
  c.expect(intx() == before, "masked-cause-quiet");
  nic.set(kIms, kIntLsc);  // pending and now unmasked: at once
  c.expect(wait_for([] { return intx() > 0; }, 2'000'000, context.tsc_per_us), "intx");
  c.expect(nic.reg(kIcr) & kIntLsc, "icr-lsc");
  c.expect(nic.reg(kIcr) == 0, "icr-read-to-clear");
  uint64_t quiet_from = rdtsc() + 20'000 * context.tsc_per_us;  // one signal may be in flight
  while (rdtsc() < quiet_from) pause();
  uint64_t settled = intx();
  uint64_t quiet_until = rdtsc() + 100'000 * context.tsc_per_us;
  while (rdtsc() < quiet_until) pause();
  c.expect(intx() == settled, "line-drops");
  nic.set(kImc, ~0u);
  ioapic_mask(gsi);

  int echoed = 0, burst = 0;
  uint32_t sent_counted = 0, received_counted = 0;
  if (port) {
    E1000Port nic_port(nic);
    Link link(nic_port, kUserAddresses, context.tsc_per_us);
    c.expect(link.resolve_peer(), "arp");
    constexpr uint32_t kSizes[] = {1, 18, 200, 511, 1000, 1400, kMaxPayload};
    (void)nic.reg(kGptc), (void)nic.reg(kGprc), (void)nic.reg(kTpt);  // the counters from here on
    link.reset_sent();
    for (int i = 0; i < 42 && c.ok; ++i) echoed += link.echo(static_cast<uint32_t>(i), kSizes[i % 7], port);
    c.expect(echoed == 42, "echo");
    // A burst to the sink (PORT+1), pipelined through the whole ring.
    auto* frames = static_cast<uint8_t*>(dma_alloc(64 * 2048, 64));
    uint8_t payload[1000];
    for (uint32_t i = 0; i < sizeof payload; ++i) payload[i] = payload_byte(7, i);
    uint32_t length = 0;
    for (int s = 0; s < 64; ++s) length = link.udp_frame(frames + s * 2048, payload, sizeof payload, port + 1);
    int done = 0;
    while (done < 500) {
      while (burst < 500 && nic.submit(frames + (burst % 64) * 2048, length)) ++burst;
      done += nic.reap();
    }
    sent_counted = nic.reg(kGptc);
    received_counted = nic.reg(kGprc);
    c.expect(sent_counted == link.sent() + static_cast<uint32_t>(burst), "tx-counters");
    c.expect(received_counted >= static_cast<uint32_t>(echoed), "rx-counters");
  }
  char mac[18];
  const uint8_t* m = nic.mac();
  snprint(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  print("BH-RESULT e1000 mac=%s phy=%08x gsi=%u intx=%lu echoed=%d burst=%d gptc=%u gprc=%u failed_check=\"%s\" %s\n", mac,
        phy_id, gsi, intx(), echoed, burst, sent_counted, received_counted, c.first_failure, c.ok ? "ok" : "FAILED");
  return c.ok;
}

// QEMU's e1000 bugs as a guest does them; the device must drop, count and stay responsive.
bool scenario_e1000_hostile(const char* arg, Context& context) {
  uint16_t port = static_cast<uint16_t>(parse_number(arg, 0));
  E1000Driver nic;
  if (!port || !nic.init()) {
    print("BH-RESULT e1000-hostile error=%s\n", port ? "no-device" : "no-port");
    return false;
  }
  E1000Port nic_port(nic);
  Link link(nic_port, kUserAddresses, context.tsc_per_us);
  Checks c;
  c.expect(link.resolve_peer(), "arp");
  using D = E1000Driver::Descriptor;
  auto* junk = static_cast<uint8_t*>(dma_alloc(65536, 64));
  memset(junk, 0x5a, 65536);
  const uint64_t t = context.tsc_per_us;

  // CVE-2021-20257: a packet that never ends (zero-length descriptors, no EOP) around the
  // ring, then a TSO context with no header and no segment size, and a data descriptor of it.
  D never_ending[40];
  for (D& d : never_ending) d = {phys(junk), 0, 0, 0, 0, 0, 0};
  never_ending[39].command = kCmdEop | kCmdRs;  // it ends, empty, so that the next packet starts afresh
  c.expect(nic.send_descriptors(never_ending, 40, 1'000'000, t), "zero-length-descriptors");
  D evil[2] = {{0, 0, 0, kCmdDext | kCmdTse, 0, 0, 0},  // context: TSE, HDRLEN 0, MSS 0
               {phys(junk), 200, 0, kCmdDext | kCmdTse | kCmdEop | kCmdRs, 0, 0, 0}};
  evil[1].cso = 0x10;  // DTYP data in the length dword's top bits: 0x00100000 | 200
  evil[1].length = 200;
  c.expect(nic.send_descriptors(evil, 2, 1'000'000, t), "evil-tso");
  uint32_t refused_tso = nic.reg(kTsctfc);
  // CVE-2012-6075's transmit side: a packet of 70 KB in 20 descriptors.
  D big[20];
  for (int i = 0; i < 20; ++i) big[i] = {phys(junk), 3500, 0, static_cast<uint8_t>(i == 19 ? kCmdEop | kCmdRs : 0), 0, 0, 0};
  c.expect(nic.send_descriptors(big, 20, 1'000'000, t), "oversize-packet");
  // CVE-2021-3416 class: a buffer in the device's own registers (its TDT), then a receive ring
  // there; and a transmit ring outside RAM.
  uint64_t registers = pci_bar(nic.function(), 0);
  D reentrant = {registers + kTdt, 64, 0, kCmdEop | kCmdRs, 0, 0, 0};
  c.expect(nic.send_descriptors(&reentrant, 1, 1'000'000, t), "dma-into-own-registers");
  nic.set(kRdbal, static_cast<uint32_t>(registers));
  link.send_udp(junk, 100, port);  // its echo lands on a ring that is not in RAM
  uint64_t wait_until = rdtsc() + 300'000 * t;
  while (rdtsc() < wait_until) pause();
  nic.restart_rings();
  nic.set(kTdbal, 0xfff00000);  // above RAM
  nic.set(kTdt, 1);
  c.expect(nic.reg(kTdh) == 0, "ring-outside-ram-not-walked");
  // QEMU CVE-2016-1981: a head beyond its ring.
  nic.restart_rings();
  nic.set(kTdh, 1000);
  nic.set(kTdt, 5);
  c.expect(nic.reg(kTdh) == 1000, "head-beyond-ring-not-walked");
  // Bad indexes: an EEPROM word past the part, a PHY register of another address.
  nic.set(kEerd, 0xff00 | 1);
  bool phy_error = false;
  nic.phy_read(7, 31, &phy_error);
  c.expect(phy_error, "phy-bad-address");
  nic.restart_rings();
  c.expect(link.echo(1, 300, port), "echo-after");
  print("BH-RESULT e1000-hostile refused_tso=%u failed_check=\"%s\" %s\n", refused_tso, c.first_failure,
        c.ok ? "ok" : "FAILED");
  return c.ok;
}

// The cost of one register access (a read of STATUS: a VM exit and the device's reply), round
// trips to PORT, and a stream of full-size datagrams to PORT+1.
bool scenario_bench_e1000(const char* arg, Context& context) {
  NetArgs args = parse_net_args(arg);
  uint16_t port = args.port;
  E1000Driver nic;
  if (!port || !nic.init()) {
    print("BH-RESULT bench-e1000 error=%s\n", port ? "no-device" : "no-port");
    return false;
  }
  constexpr int kReads = 20000, kRoundTrips = 2000, kStream = 20000;
  uint64_t start = rdtsc();
  uint32_t sink = 0;
  for (int i = 0; i < kReads; ++i) sink += nic.reg(kStatus);
  uint64_t access_ns = (rdtsc() - start) * 1000 / context.tsc_per_us / kReads;
  E1000Port nic_port(nic);
  Link link(nic_port, args.addresses(), context.tsc_per_us);
  if (!link.resolve_peer()) {
    print("BH-RESULT bench-e1000 error=no-arp-reply\n");
    return false;
  }
  int lost = 0;
  for (int i = 0; i < 50; ++i) lost += !link.echo(static_cast<uint32_t>(i), 64, port);
  start = rdtsc();
  for (int i = 0; i < kRoundTrips; ++i) lost += !link.echo(static_cast<uint32_t>(i), 64, port);
  uint64_t rtt_ns = (rdtsc() - start) * 1000 / context.tsc_per_us / kRoundTrips;
  auto* frames = static_cast<uint8_t*>(dma_alloc(64 * 2048, 64));
  uint8_t payload[kMaxPayload];
  for (uint32_t i = 0; i < kMaxPayload; ++i) payload[i] = payload_byte(0, i);
  uint32_t length = 0;
  for (int s = 0; s < 64; ++s) length = link.udp_frame(frames + s * 2048, payload, kMaxPayload, port + 1);
  int sent = 0, done = 0;
  start = rdtsc();
  while (done < kStream) {
    while (sent < kStream && nic.submit(frames + (sent % 64) * 2048, length)) ++sent;
    done += nic.reap();
    pause();
  }
  uint64_t stream_us = (rdtsc() - start) / context.tsc_per_us;
  uint64_t pps = stream_us ? kStream * 1000000ull / stream_us : 0;
  uint64_t rx_us = 0;
  uint32_t received = link.flood(port, kStream, kMaxPayload, &rx_us);
  uint64_t rx_pps = rx_us ? (received - 1) * 1000000ull / rx_us : 0;
  print("BH-RESULT bench-e1000 access_ns=%lu rtt_ns=%lu lost=%d stream_pps=%lu stream_mbps=%lu rx_pps=%lu rx_mbps=%lu "
        "rx_received=%u status=%x\n",
        access_ns, rtt_ns, lost, pps, pps * length * 8 / 1000000, rx_pps, rx_pps * length * 8 / 1000000, received,
        sink / kReads);
  return lost == 0;
}

}  // namespace guest
