// The e1000's parts on their own: the EEPROM as Linux bit-bangs it, the PHY through MDIC, the
// software checksums and TCP segmentation against independently computed values, and the
// device with guest memory and a real SOCK_SEQPACKET host end (as user-mode networking gives
// it): descriptors both ways, the FCS Linux expects, filters, interrupt causes, and the
// refusals QEMU's CVEs call for.
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "device-procs/e1000/e1000_device.h"
#include "device-procs/e1000/e1000_regs.h"
#include "tests/unit/fake_driver.h"

namespace bulkhead::device {
namespace {

using namespace e1000;

const std::array<uint8_t, 6> kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

// Linux's e1000_shift_out_ee_bits / e1000_shift_in_ee_bits, for one word.
uint16_t microwire_read(Eeprom& eeprom, uint8_t word) {
  auto clock = [&](uint32_t eecd) {
    eeprom.write_eecd(eecd | kEecdSk);
    eeprom.write_eecd(eecd);
  };
  eeprom.write_eecd(kEecdReq);
  EXPECT_TRUE(eeprom.read_eecd() & kEecdGnt);
  uint32_t eecd = kEecdReq | kEecdCs;
  eeprom.write_eecd(eecd);
  uint32_t command = 0b110u << 6 | word;
  for (int i = 8; i >= 0; --i) {
    uint32_t bit = ((command >> i) & 1) ? kEecdDi : 0;
    eeprom.write_eecd(eecd | bit);
    clock(eecd | bit);
  }
  uint16_t value = 0;
  for (int i = 0; i < 16; ++i) {
    eeprom.write_eecd(eecd | kEecdSk);
    value = static_cast<uint16_t>(value << 1 | ((eeprom.read_eecd() & kEecdDo) ? 1 : 0));
    eeprom.write_eecd(eecd);
  }
  eeprom.write_eecd(0);
  return value;
}

TEST(E1000Eeprom, LinuxReadsTheMacAndAValidChecksum) {
  Eeprom eeprom(kMac);
  uint16_t sum = 0;
  for (uint8_t w = 0; w < 64; ++w) sum = static_cast<uint16_t>(sum + microwire_read(eeprom, w));
  EXPECT_EQ(sum, 0xbaba);
  EXPECT_EQ(microwire_read(eeprom, 0), 0x5452);
  EXPECT_EQ(microwire_read(eeprom, 2), 0x5634);
  eeprom.write_eerd(0x0100 | kEerdStart);  // EERD: word 1
  EXPECT_EQ(eeprom.read_eerd() >> 16, 0x1200u);
  EXPECT_TRUE(eeprom.read_eerd() & kEerdDone);
  eeprom.write_eerd(0xff00 | kEerdStart);  // past the part: wraps, never out of bounds
  EXPECT_EQ(eeprom.read_eerd() >> 16, eeprom.word(0x3f));
}

TEST(E1000Phy, IdsLinkAndErrors) {
  Phy phy;
  auto read = [&](unsigned address, unsigned r) { return phy.access(kMdicOpRead | address << 21 | r << 16); };
  EXPECT_EQ(read(1, 2) & 0xffff, 0x0141u);
  EXPECT_EQ(read(1, 3) & 0xfff0, 0x0c20u);
  EXPECT_TRUE(read(1, 1) & kMdicReady);
  EXPECT_TRUE(read(1, 1) & 0x4) << "link";
  EXPECT_TRUE(read(2, 1) & kMdicError) << "nothing at address 2";
  EXPECT_TRUE(phy.access(kMdicOpWrite | 1u << 21 | 2u << 16 | 0x1234) & kMdicError) << "the ID is read-only";
  phy.access(kMdicOpWrite | 1u << 21 | 0u << 16 | 0x9200);  // reset and restart auto-negotiation
  EXPECT_EQ(read(1, 0) & 0xffff, 0x1000u) << "both bits clear themselves";
  phy.set_link(false);
  EXPECT_FALSE(read(1, 1) & 0x4);
}

// A TCP/IPv4 packet: Ethernet, IPv4 (20), TCP (20), payload.
std::vector<uint8_t> tcp_packet(size_t payload) {
  std::vector<uint8_t> p(14 + 20 + 20 + payload);
  p[12] = 0x08, p[13] = 0x00;
  uint8_t* ip = p.data() + 14;
  ip[0] = 0x45, ip[8] = 64, ip[9] = 6;
  ip[4] = 0x12, ip[5] = 0x34;                 // identification
  ip[12] = 10, ip[15] = 2, ip[16] = 10, ip[19] = 15;  // 10.0.0.2 -> 10.0.0.15
  uint8_t* tcp = ip + 20;
  tcp[0] = 0x30, tcp[1] = 0x39, tcp[2] = 0x00, tcp[3] = 0x50;
  tcp[4] = 0x01, tcp[5] = 0x02, tcp[6] = 0x03, tcp[7] = 0x04;  // sequence
  tcp[12] = 0x50, tcp[13] = 0x19;                                // FIN PSH ACK
  for (size_t i = 0; i < payload; ++i) p[54 + i] = static_cast<uint8_t>(i * 7);
  return p;
}

uint16_t ones_sum(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// A TCP/IPv4 segment's checksums verify (the sums including them come to 0xffff).
bool checksums_verify(const std::vector<uint8_t>& f) {
  const uint8_t* ip = f.data() + 14;
  uint32_t tcp_length = static_cast<uint32_t>(f.size() - 34);
  uint32_t pseudo = ones_sum(ip + 12, 8) + 6u + tcp_length;
  return ones_sum(ip, 20) == 0xffff && ones_sum(ip + 20, tcp_length, pseudo) == 0xffff;
}

TEST(E1000Offload, SegmentsATsoPacketTheWayTheWireWantsIt) {
  std::vector<uint8_t> p = tcp_packet(2500);
  // As Linux posts TSO: total length and IP checksum zero, the TCP checksum field holding
  // the pseudo-header sum without a length.
  uint8_t* ip = p.data() + 14;
  uint16_t partial = ones_sum(ip + 12, 8, 6);
  p[34 + 16] = static_cast<uint8_t>(partial >> 8), p[34 + 17] = static_cast<uint8_t>(partial);
  OffloadContext c{14, 24, 33, 34, 50, 0, 54, 1000, true, true};
  std::vector<std::vector<uint8_t>> frames;
  ASSERT_TRUE(segment(c, true, true, p, [&](std::span<uint8_t> f) { frames.emplace_back(f.begin(), f.end()); }));
  ASSERT_EQ(frames.size(), 3u);
  uint32_t seq = 0x01020304;
  for (size_t i = 0; i < frames.size(); ++i) {
    SCOPED_TRACE(i);
    const auto& f = frames[i];
    size_t payload = i < 2 ? 1000 : 500;
    EXPECT_EQ(f.size(), 54 + payload);
    EXPECT_EQ(f[16] << 8 | f[17], static_cast<int>(40 + payload)) << "IP total length";
    EXPECT_EQ(f[18] << 8 | f[19], static_cast<int>(0x1234 + i)) << "identification";
    uint32_t s = static_cast<uint32_t>(f[38]) << 24 | f[39] << 16 | f[40] << 8 | f[41];
    EXPECT_EQ(s, seq + 1000 * i);
    EXPECT_EQ(f[47], i < 2 ? 0x10 : 0x19) << "FIN and PSH only on the last";
    EXPECT_TRUE(checksums_verify(f));
    EXPECT_EQ(f[54], static_cast<uint8_t>(1000 * i * 7)) << "its share of the payload";
  }
}

TEST(E1000Offload, RefusesContextsThatDoNotFit) {
  std::vector<uint8_t> p = tcp_packet(100);
  auto none = [](std::span<uint8_t>) { FAIL() << "nothing may be emitted"; };
  OffloadContext good{14, 24, 33, 34, 50, 0, 54, 1000, true, true};
  OffloadContext c = good;
  c.mss = 0;  // QEMU CVE-2015-6815
  EXPECT_FALSE(segment(c, true, true, p, none));
  c = good, c.header_length = 0;
  EXPECT_FALSE(segment(c, true, true, p, none));
  c = good, c.header_length = 255;  // past the packet
  EXPECT_FALSE(segment(c, true, true, p, none));
  c = good, c.l4_offset = 200;
  EXPECT_FALSE(segment(c, true, true, p, none));
  c = good, c.l4_start = 50;  // a TCP header that would run past the header
  EXPECT_FALSE(segment(c, true, true, p, none));
  std::vector<uint8_t> tiny(10);
  EXPECT_FALSE(insert_checksum(tiny, 20, 2, 0)) << "start past the frame";
  EXPECT_FALSE(insert_checksum(tiny, 0, 9, 0)) << "a field that does not fit";
  EXPECT_TRUE(insert_checksum(tiny, 0, 8, 0));
}

// The device with 4 MiB of guest RAM: rings at 0x10000 (TX) and 0x20000 (RX), buffers above.
class E1000DeviceTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kTxRing = 0x10000, kRxRing = 0x20000, kTxData = 0x100000, kRxData = 0x200000;
  static constexpr uint32_t kRing = 16;

  E1000DeviceTest() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
    host.reset(sv[0]);
    std::vector<UniqueFd> fds;
    fds.emplace_back(sv[1]);
    ipc::NetBackend config;
    config.set_packet_fd(0);
    device = std::make_unique<E1000Device>(loop, make_net_backend(config, fds), kMac);
    memory.add(ram.region(), ram.dup_fd());
    device->attach_memory(memory);
    device->write(E1000Device::kConfig, legacy::kPciConfigCommand, 2, 0x7);  // bus master
    set(kTdbal, kTxRing), set(kTdlen, kRing * 16), set(kTdh, 0), set(kTdt, 0);
    set(kRdbal, kRxRing), set(kRdlen, kRing * 16), set(kRdh, 0);
    for (uint32_t i = 0; i < kRing; ++i) {
      uint64_t address = kRxData + 0x1000ull * i;
      std::memcpy(ram.at(kRxRing + 16 * i), &address, 8);
    }
    set(kRdt, kRing - 1);
    set(kRctl, kRctlEn | kRctlBam);
    set(kTctl, kTctlEn);
  }
  uint32_t get(uint32_t offset) { return static_cast<uint32_t>(device->read(E1000Device::kRegisters, offset, 4)); }
  void set(uint32_t offset, uint64_t value) { device->write(E1000Device::kRegisters, offset, 4, value); }
  // One legacy descriptor per piece, EOP and RS on the last; then the tail moves.
  void transmit(const std::vector<std::pair<uint64_t, uint16_t>>& pieces, uint8_t extra_command = 0) {
    uint32_t tail = get(kTdt);
    for (size_t i = 0; i < pieces.size(); ++i) {
      uint8_t d[16] = {};
      std::memcpy(d, &pieces[i].first, 8);
      std::memcpy(d + 8, &pieces[i].second, 2);
      d[11] = static_cast<uint8_t>(extra_command | (i + 1 == pieces.size() ? kTxCmdEop | kTxCmdRs : 0));
      std::memcpy(ram.at(kTxRing + 16 * tail), d, 16);
      tail = (tail + 1) % kRing;
    }
    set(kTdt, tail);
  }
  std::string sent() {
    char buffer[70000];
    ssize_t n = ::recv(host.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    return n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  }
  void arrive(const std::string& frame) {
    ASSERT_EQ(::send(host.get(), frame.data(), frame.size(), 0), static_cast<ssize_t>(frame.size()));
    while (loop.run_once(0) > 0) {
    }
  }
  static std::string frame_to(const std::array<uint8_t, 6>& dst, size_t length) {
    std::string f(length, 'f');
    std::memcpy(f.data(), dst.data(), 6);
    return f;
  }
  uint8_t rx_status(uint32_t i) { return *ram.at(kRxRing + 16 * i + 12); }
  uint16_t rx_length(uint32_t i) {
    uint16_t v;
    std::memcpy(&v, ram.at(kRxRing + 16 * i + 8), 2);
    return v;
  }

  EventLoop loop;
  test::GuestRam ram;
  vhost_user::MemoryMap memory;
  UniqueFd host;
  std::unique_ptr<E1000Device> device;
};

TEST_F(E1000DeviceTest, TransmitsPacketsGatheredFromDescriptorsAndWritesBackDone) {
  std::string frame = frame_to({1, 2, 3, 4, 5, 6}, 300);
  std::memcpy(ram.at(kTxData), frame.data(), frame.size());
  transmit({{kTxData, 100}, {kTxData + 100, 200}});
  EXPECT_EQ(sent(), frame);
  EXPECT_EQ(get(kTdh), 2u);
  EXPECT_TRUE(*ram.at(kTxRing + 16 + 12) & kTxStatusDd) << "DD on the descriptor with RS";
  EXPECT_TRUE(get(kIcr) & kIntTxdw);
  EXPECT_EQ(get(kStatGptc), 1u);
  EXPECT_EQ(get(kStatGptc), 0u) << "statistics clear on read";
}

TEST_F(E1000DeviceTest, ReceivesWithTheFcsLinuxStripsAndSpillsLongFrames) {
  arrive(frame_to(kMac, 100));
  EXPECT_EQ(rx_length(0), 104u) << "the frame and its 4-byte FCS (SECRC is off)";
  EXPECT_EQ(rx_status(0), kRxStatusDd | kRxStatusEop | kRxStatusIxsm);
  EXPECT_EQ(get(kRdh), 1u);
  EXPECT_TRUE(get(kIcr) & kIntRxt0);
  set(kRctl, kRctlEn | kRctlBam | (2u << kRctlBsizeShift));  // 512-byte buffers
  arrive(frame_to(kMac, 1400));
  EXPECT_EQ(rx_length(1) + rx_length(2) + rx_length(3), 1404u);
  EXPECT_EQ(rx_status(1), kRxStatusDd) << "no EOP but on the last";
  EXPECT_TRUE(rx_status(3) & kRxStatusEop);
  arrive(frame_to(kMac, 20));
  EXPECT_EQ(rx_length(4), 64u) << "padded to the minimum frame";
}

TEST_F(E1000DeviceTest, DropsOversizedFramesUnlessLongPacketsAreEnabled) {  // QEMU CVE-2012-6075
  arrive(frame_to(kMac, 1519));
  EXPECT_EQ(get(kRdh), 0u);
  EXPECT_EQ(device->counters().rx_oversize, 1u);
  EXPECT_EQ(get(kStatRoc), 1u);
  set(kRctl, kRctlEn | kRctlBam | kRctlLpe);
  arrive(frame_to(kMac, 4000));
  EXPECT_EQ(get(kRdh), 2u) << "with LPE it spans two 2 KiB buffers";
}

TEST_F(E1000DeviceTest, FiltersByAddressMulticastTableAndModes) {
  arrive(frame_to({0x52, 0x54, 0, 0, 0, 9}, 60));  // someone else
  arrive(frame_to({0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, 60));  // a group not joined
  EXPECT_EQ(get(kRdh), 0u);
  arrive(frame_to({0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 60));
  EXPECT_EQ(get(kRdh), 1u) << "broadcasts with BAM";
  // 01:00:5e:00:00:01 with MO=0 hashes to (0x00 >> 4) | (0x01 << 4) = 0x010: MTA[0] bit 16.
  set(kMta, 1u << 16);
  arrive(frame_to({0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}, 60));
  EXPECT_EQ(get(kRdh), 2u) << "a joined group";
  set(kRctl, kRctlEn | kRctlUpe);
  arrive(frame_to({0x52, 0x54, 0, 0, 0, 9}, 60));
  EXPECT_EQ(get(kRdh), 3u) << "unicast promiscuous";
  EXPECT_EQ(device->counters().rx_filtered, 2u);
}

TEST_F(E1000DeviceTest, FramesWaitWhenTheRingIsFullAndNothingIsLost) {
  set(kRdt, 2);  // two buffers
  for (char c : std::string("abcd")) {
    std::string f = frame_to(kMac, 80);
    f[20] = c;
    arrive(f);
  }
  EXPECT_EQ(get(kRdh), 2u);
  EXPECT_TRUE(get(kIcr) & kIntRxo) << "the driver is told it ran out";
  set(kRdt, 6);
  while (loop.run_once(0) > 0) {
  }
  EXPECT_EQ(get(kRdh), 4u) << "the frames that waited came in";
  for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(*ram.at(kRxData + 0x1000ull * i + 20), "abcd"[i]);
}

TEST_F(E1000DeviceTest, InterruptCausesFollowTheMaskAndClearOnRead) {
  set(kImc, ~0u);
  set(kIcs, kIntLsc);
  EXPECT_FALSE(device->interrupt_level()) << "masked";
  set(kIms, kIntLsc);
  EXPECT_TRUE(device->interrupt_level()) << "a pending cause unmasked asserts at once";
  EXPECT_EQ(get(kIcr), kIntLsc);
  EXPECT_FALSE(device->interrupt_level()) << "reading ICR clears it and the line";
  set(kIcs, kIntLsc);
  set(kImc, kIntLsc);
  EXPECT_FALSE(device->interrupt_level()) << "masking drops the line";
}

TEST_F(E1000DeviceTest, RingsAndBuffersOutsideRamAreRefusedAndTheDeviceCarriesOn) {
  // QEMU CVE-2016-1981: a head outside the ring is not walked.
  set(kTdh, 1000);
  set(kTdt, 3);
  EXPECT_EQ(get(kTdh), 1000u);
  EXPECT_EQ(device->counters().ring_invalid, 1u);
  // A ring beyond guest RAM, and a buffer in a BAR (not RAM) at the device's own registers.
  set(kTdbal, 0xfff00000), set(kTdh, 0), set(kTdt, 1);
  EXPECT_EQ(get(kTdh), 0u);
  set(kTdbal, kTxRing), set(kTdh, 0), set(kTdt, 0);
  transmit({{0xfebf0000 + kTdt, 64}});
  EXPECT_EQ(sent(), "");
  EXPECT_GE(device->counters().dma_refused, 2u);
  // A packet that never ends: at most 64 KiB and its headers are gathered, then it is dropped.
  std::vector<std::pair<uint64_t, uint16_t>> pieces(14, {kTxData, 6000});
  transmit(pieces);
  EXPECT_EQ(sent(), "");
  EXPECT_EQ(device->counters().tx_overflow, 1u);
  std::string frame = frame_to({1, 2, 3, 4, 5, 6}, 64);
  std::memcpy(ram.at(kTxData), frame.data(), frame.size());
  transmit({{kTxData, 64}});
  EXPECT_EQ(sent(), frame) << "still transmitting";
}

TEST_F(E1000DeviceTest, AGlobalResetThroughIoDataRestoresPowerOnState) {
  set(kIms, 0xff);
  device->write(E1000Device::kIoPorts, 0, 4, kCtrl);
  device->write(E1000Device::kIoPorts, 4, 4, kCtrlRst);
  EXPECT_EQ(get(kIms), 0u);
  EXPECT_EQ(get(kRctl), 0u);
  EXPECT_EQ(get(kRa + 4), 0x5634u | kRahAv) << "the EEPROM's address reloaded";
  device->write(E1000Device::kIoPorts, 0, 4, kStatus);
  EXPECT_TRUE(device->read(E1000Device::kIoPorts, 4, 4) & kStatusLu) << "IODATA reads registers too";
}

}  // namespace
}  // namespace bulkhead::device
