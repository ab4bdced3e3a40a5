#include "device-procs/e1000/e1000_device.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "device-procs/e1000/e1000_regs.h"

namespace bulkhead::device {

using namespace e1000;

namespace {

constexpr uint16_t kCommandBusMaster = 1u << 2;
constexpr uint32_t kIoRegisterWindow = 0x40;
constexpr size_t kDescriptor = 16;
constexpr size_t kMinFrame = 60;  // without FCS
constexpr size_t kFcs = 4;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) { return static_cast<uint32_t>(p[0] | p[1] << 8 | p[2] << 16) | static_cast<uint32_t>(p[3]) << 24; }
uint64_t le64(const uint8_t* p) { return le32(p) | static_cast<uint64_t>(le32(p + 4)) << 32; }
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

// The Ethernet frame check sequence (CRC-32, reflected, as it goes on the wire).
uint32_t ethernet_crc(std::span<const uint8_t> bytes) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xffffffffu;
  for (uint8_t b : bytes) crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
  return ~crc;
}

// Which of the six size bins (64, 65-127, ..., 1024-1522 bytes with FCS) a frame counts in.
uint32_t size_bin(size_t bytes_with_fcs) {
  if (bytes_with_fcs <= 64) return 0;
  if (bytes_with_fcs <= 127) return 1;
  if (bytes_with_fcs <= 255) return 2;
  if (bytes_with_fcs <= 511) return 3;
  if (bytes_with_fcs <= 1023) return 4;
  return 5;
}

bool is_high_half(uint32_t offset) {
  return offset == kStatGorcl + 4 || offset == kStatGotcl + 4 || offset == kStatTorl + 4 || offset == kStatTotl + 4;
}
bool is_low_half(uint32_t offset) {
  return offset == kStatGorcl || offset == kStatGotcl || offset == kStatTorl || offset == kStatTotl;
}

}  // namespace

E1000Device::E1000Device(EventLoop& loop, std::unique_ptr<NetBackend> backend, const std::array<uint8_t, 6>& mac)
    : loop_(loop), backend_(std::move(backend)), mac_(mac), regs_(kRegisterSpace / 4), eeprom_(mac) {
  if (backend_->queues() != 1) throw InputError("the e1000 has one queue; its host end has " + std::to_string(backend_->queues()));
  rx_frame_.resize(sizeof(VirtioNetHeader) + kMaxTxPacket);
  // CLOCK_MONOTONIC timer owned by us, for ITR's minimum interval between interrupts.
  throttle_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!throttle_timer_) throw_errno("timerfd_create");
  loop_.add(throttle_timer_.get(), EPOLLIN, [this](uint32_t) { on_throttle_timer(); });
  loop_.add(backend_->fd(0), EPOLLIN, [this](uint32_t events) {
    if (events & (EPOLLHUP | EPOLLERR)) {  // the host end is gone (bh-slirp died): the cable is out
      watching_ = congested_ = false;
      update_events();
      set_link(false);
      return;
    }
    if ((events & EPOLLOUT) && backend_->flush(0)) {  // the host end took what waited
      congested_ = false;
      update_events();
      transmit();
    }
    if (events & EPOLLIN) receive();
  });
  reset();
}

E1000Device::~E1000Device() {
  loop_.remove(throttle_timer_.get());
  loop_.remove(backend_->fd(0));
}

legacy::DeviceInfo E1000Device::info() const {
  legacy::DeviceInfo info{};
  std::strncpy(info.kind, kKind, sizeof info.kind);
  info.num_regions = 3;
  info.num_irqs = 1;  // INTA
  info.flags = legacy::kDeviceNeedsGuestMemory | legacy::kDeviceHasPciFunction;
  info.region_size[kRegisters] = kRegisterSpace;
  info.region_size[kIoPorts] = kIoRegisterWindow;
  info.region_size[kConfig] = 256;
  info.pci.vendor = 0x8086;
  info.pci.device = 0x100e;
  info.pci.subsystem_vendor = 0x8086;  // as the EEPROM says (words 0x0b, 0x0c)
  info.pci.subsystem = 0x100e;
  info.pci.class_code = 0x020000;
  info.pci.revision = 3;
  info.pci.interrupt_pin = 1;
  info.pci.config_region = kConfig;
  info.pci.bars[0] = {kRegisterSpace, static_cast<uint8_t>(legacy::BarKind::kMemory32), kRegisters, 0};
  info.pci.bars[1] = {kIoRegisterWindow, static_cast<uint8_t>(legacy::BarKind::kIo), kIoPorts, 0};
  return info;
}

void E1000Device::attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) {
  if (index == 0) intx_.attach(loop_, std::move(trigger), std::move(resample));
}

void E1000Device::reset() {
  std::fill(regs_.begin(), regs_.end(), 0);
  reg(kCtrl) = kCtrlSlu | (2u << 8) | (1u << 18) | (1u << 20);  // link up, 1000 Mb/s, SWDPIN0 and 2
  reg(kLedctl) = 0x602;
  reg(kPba) = 0x00100030;
  reg(kRa) = static_cast<uint32_t>(mac_[0] | mac_[1] << 8 | mac_[2] << 16) | static_cast<uint32_t>(mac_[3]) << 24;
  reg(kRa + 4) = static_cast<uint32_t>(mac_[4] | mac_[5] << 8) | kRahAv;  // from the EEPROM, as the chip loads it
  packet_ = {};
  tso_context_ = checksum_context_ = {};
  throttled_ = false;
  itimerspec off{};
  // Disarms our own timer.
  ::timerfd_settime(throttle_timer_.get(), 0, &off, nullptr);
  update_interrupt();
}

// --- Register access -----------------------------------------------------------------------

uint64_t E1000Device::read(uint8_t region, uint64_t offset, uint8_t size) {
  uint64_t mask = size >= 4 ? 0xffffffffull : (1ull << (8 * size)) - 1;
  switch (region) {
    case kRegisters:
      if (offset >= kRegisterSpace) return 0;
      return (reg_read(static_cast<uint32_t>(offset & ~3ull)) >> (8 * (offset & 3))) & mask;
    case kIoPorts:
      if (offset == 0) return io_address_ & mask;
      if (offset == 4) return io_address_ < kRegisterSpace ? reg_read(io_address_ & ~3u) & mask : 0;
      return 0;
    case kConfig:
      return offset == legacy::kPciConfigCommand && size == 2 ? pci_command_ : 0;
  }
  return ~0ull;
}

void E1000Device::write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) {
  switch (region) {
    case kRegisters:
      // Linux and the test guest write whole registers; narrower writes are not what it does.
      if (size == 4 && offset < kRegisterSpace) reg_write(static_cast<uint32_t>(offset), static_cast<uint32_t>(value));
      return;
    case kIoPorts:
      if (size != 4) return;
      if (offset == 0) io_address_ = static_cast<uint32_t>(value);
      if (offset == 4 && io_address_ < kRegisterSpace) reg_write(io_address_ & ~3u, static_cast<uint32_t>(value));
      return;
    case kConfig:
      if (offset == legacy::kPciConfigCommand && size == 2) {
        bool was_master = pci_command_ & kCommandBusMaster;
        pci_command_ = static_cast<uint16_t>(value);
        if (!was_master && (pci_command_ & kCommandBusMaster)) {
          transmit();
          receive();
        }
      }
      return;
  }
}

uint32_t E1000Device::reg_read(uint32_t offset) {
  switch (offset) {
    case kStatus:
      return (phy_.link() ? kStatusLu : 0) | kStatusFd | kStatusSpeed1000 | 0x300u;  // ASDV: 1000
    case kEecd:
      return eeprom_.read_eecd();
    case kEerd:
      return eeprom_.read_eerd();
    case kIcr: {
      uint32_t causes = reg(kIcr);
      reg(kIcr) = 0;  // read-to-clear, and the line drops
      update_interrupt();
      return causes;
    }
    case kIcs:
      return reg(kIcr);
    case kImc:
      return 0;
    case kRdh: case kRdt: case kTdh: case kTdt:
      return reg(offset) & 0xffff;
    default:
      break;
  }
  if (offset >= kStatsStart && offset < kStatsEnd) {
    uint32_t value = reg(offset);
    // Statistics clear on read; a 64-bit pair when its high half is read (Linux reads low first).
    if (is_high_half(offset)) reg(offset) = reg(offset - 4) = 0;
    else if (!is_low_half(offset)) reg(offset) = 0;
    return value;
  }
  return reg(offset);
}

void E1000Device::reg_write(uint32_t offset, uint32_t value) {
  switch (offset) {
    case kCtrl:
      if (value & kCtrlRst) {  // a global reset, as Linux issues it through IODATA
        reset();
        return;
      }
      if (value & kCtrlPhyRst) phy_.reset();
      reg(kCtrl) = value & ~kCtrlPhyRst;
      return;
    case kStatus:
      return;  // read-only
    case kEecd:
      eeprom_.write_eecd(value);
      return;
    case kEerd:
      eeprom_.write_eerd(value);
      return;
    case kMdic:
      reg(kMdic) = phy_.access(value);
      if (value & kMdicInterrupt) raise(kIntMdac);
      return;
    case kIcr:
      reg(kIcr) &= ~value;
      update_interrupt();
      return;
    case kIcs:
      raise(value & kIntCauses);
      return;
    case kIms:
      reg(kIms) |= value & kIntCauses;
      update_interrupt();  // causes already pending and now unmasked assert at once
      return;
    case kImc:
      reg(kIms) &= ~value;
      update_interrupt();
      return;
    case kRctl: {
      bool was_enabled = reg(kRctl) & kRctlEn;
      reg(kRctl) = value;
      if (!was_enabled && (value & kRctlEn)) receive();
      return;
    }
    case kTctl:
      reg(kTctl) = value;
      if (value & kTctlEn) transmit();
      return;
    case kRdbal: case kTdbal:
      reg(offset) = value & ~0xfu;
      return;
    case kRdlen: case kTdlen:
      reg(offset) = value & 0xfff80;
      return;
    case kRdh: case kTdh:
      reg(offset) = value & 0xffff;
      return;
    case kRdt:
      reg(kRdt) = value & 0xffff;
      receive();  // frames waiting for buffers
      return;
    case kTdt:
      reg(kTdt) = value & 0xffff;
      transmit();
      return;
    default:
      break;
  }
  if (offset >= kStatsStart && offset < kStatsEnd) return;  // read-only counters
  reg(offset) = value;
}

// --- Interrupts ------------------------------------------------------------------------------

void E1000Device::raise(uint32_t causes) {
  reg(kIcr) |= causes;
  update_interrupt();
}

void E1000Device::update_interrupt() {
  if (!(reg(kIcr) & reg(kIms))) {
    intx_.set_level(false);
    return;
  }
  if (intx_.level() || throttled_) return;  // asserted already, or held back by ITR until its timer
  intx_.set_level(true);
  uint64_t interval_ns = static_cast<uint64_t>(reg(kItr) & 0xffff) * 256;
  if (!interval_ns) return;
  throttled_ = true;
  itimerspec when{};
  when.it_value.tv_sec = static_cast<time_t>(interval_ns / 1'000'000'000);
  when.it_value.tv_nsec = static_cast<long>(interval_ns % 1'000'000'000);
  // Arms our own timer: the earliest moment the next interrupt may assert.
  ::timerfd_settime(throttle_timer_.get(), 0, &when, nullptr);
}

void E1000Device::on_throttle_timer() {
  uint64_t expirations;
  // Resets our timerfd (an 8-byte read into a local); EAGAIN is a stale wake-up.
  if (::read(throttle_timer_.get(), &expirations, sizeof expirations) != sizeof expirations) return;
  throttled_ = false;
  update_interrupt();
}

void E1000Device::set_link(bool up) {
  if (phy_.link() == up) return;
  phy_.set_link(up);
  raise(kIntLsc);
}

// --- DMA -------------------------------------------------------------------------------------

bool E1000Device::dma_read(uint64_t gpa, void* out, size_t length) {
  if (!memory_ || !(pci_command_ & kCommandBusMaster)) return false;
  std::vector<vhost_user::HostRange>& ranges = dma_ranges_;
  ranges.clear();
  if (!memory_->gpa_to_ranges(gpa, length, ranges)) return false;
  auto* to = static_cast<uint8_t*>(out);
  for (const auto& r : ranges) to = std::copy(r.data, r.data + r.size, to);
  return true;
}

bool E1000Device::dma_write(uint64_t gpa, const void* in, size_t length) {
  if (!memory_ || !(pci_command_ & kCommandBusMaster)) return false;
  std::vector<vhost_user::HostRange>& ranges = dma_ranges_;
  ranges.clear();
  if (!memory_->gpa_to_ranges(gpa, length, ranges)) return false;
  auto* from = static_cast<const uint8_t*>(in);
  for (const auto& r : ranges) {
    std::memcpy(r.data, from, r.size);
    from += r.size;
  }
  return true;
}

uint32_t E1000Device::ring_size(uint32_t length_register) const { return (reg(length_register) & 0xfff80) / kDescriptor; }

// --- Transmit --------------------------------------------------------------------------------

void E1000Device::transmit() {
  if (transmitting_) {  // a write during our own pass: note it, the pass picks it up
    tx_pending_ = true;
    return;
  }
  if (!(reg(kTctl) & kTctlEn)) return;
  transmitting_ = true;
  do {
    tx_pending_ = false;
    uint32_t size = ring_size(kTdlen), head = reg(kTdh), tail = reg(kTdt);
    uint64_t base = static_cast<uint64_t>(reg(kTdbah)) << 32 | reg(kTdbal);
    if (head == tail) break;
    if (size == 0 || head >= size || tail >= size) {
      ++counters_.ring_invalid;  // QEMU CVE-2016-1981: the walk would never meet the tail
      break;
    }
    bool written_back = false;
    for (uint32_t n = 0; head != tail && n < size; ++n) {
      if (backend_->congested(0)) {  // back-pressure: the rest waits on the ring until EPOLLOUT
        congested_ = true;
        update_events();
        break;
      }
      uint8_t d[kDescriptor];
      uint64_t at = base + kDescriptor * head;
      if (!dma_read(at, d, sizeof d)) {
        ++counters_.dma_refused;  // a ring outside guest RAM: stop, and write nothing back
        break;
      }
      transmit_descriptor(d);
      if (d[11] & (kTxCmdRs | kTxCmdRps)) {
        uint8_t status = static_cast<uint8_t>((d[12] & 0xf0) | kTxStatusDd);
        if (dma_write(at + 12, &status, 1)) written_back = true;
      }
      head = (head + 1) % size;
      reg(kTdh) = head;
    }
    raise((written_back ? kIntTxdw : 0) | (head == tail ? kIntTxqe : 0));
  } while (tx_pending_);
  transmitting_ = false;
}

void E1000Device::transmit_descriptor(const uint8_t* d) {
  uint32_t dword2 = le32(d + 8);
  uint8_t command = d[11];
  bool extended = command & kTxCmdDext;
  uint8_t type = (dword2 >> 20) & 0xf;
  if (extended && type == kTxDtypContext) {
    OffloadContext c;
    c.ip_start = d[0];
    c.ip_offset = d[1];
    c.ip_end = le16(d + 2);
    c.l4_start = d[4];
    c.l4_offset = d[5];
    c.l4_end = le16(d + 6);
    c.header_length = d[13];
    c.mss = le16(d + 14);
    c.tcp = command & kTucmdTcp;
    c.ipv4 = command & kTucmdIp;
    (command & kTucmdTse ? tso_context_ : checksum_context_) = c;
    return;
  }
  uint32_t length = 0;
  if (extended && type == kTxDtypData) {
    length = dword2 & 0xfffff;
    if (!packet_.started) {
      packet_.tse = command & kTxCmdTse;
      packet_.ip_checksum = d[13] & kPoptsIxsm;
      packet_.l4_checksum = d[13] & kPoptsTxsm;
    }
  } else if (!extended) {
    length = dword2 & 0xffff;
    if (!packet_.started) packet_.legacy_start = d[13];
    if (command & kTxCmdIc) {
      packet_.legacy_checksum = true;
      packet_.legacy_offset = d[10];
    }
  }  // a reserved descriptor type carries nothing
  packet_.started = true;
  if (command & kTxCmdVle) {
    packet_.vlan = true;
    packet_.vlan_tag = le16(d + 14);
  }
  if (length && !packet_.overflow && !packet_.unreadable) {
    size_t at = packet_.bytes.size();
    if (at + length > kMaxTxPacket) {
      packet_.overflow = true;  // dropped whole at its end of packet
    } else {
      packet_.bytes.resize(at + length);
      if (!dma_read(le64(d), packet_.bytes.data() + at, length)) {
        ++counters_.dma_refused;
        packet_.unreadable = true;
      }
    }
  }
  if (command & kTxCmdEop) finish_packet();
}

void E1000Device::finish_packet() {
  // An overflowing packet, or one with a buffer outside RAM (counted when refused), is dropped.
  if (packet_.overflow) ++counters_.tx_overflow;
  if (!packet_.overflow && !packet_.unreadable) send_packet();
  std::vector<uint8_t> keep = std::move(packet_.bytes);
  packet_ = {};
  keep.clear();
  packet_.bytes = std::move(keep);  // its capacity, for the next packet
}

void E1000Device::send_packet() {
  if (packet_.tse) {
    if (segment(tso_context_, packet_.ip_checksum, packet_.l4_checksum, packet_.bytes,
                [this](std::span<uint8_t> frame) { send_frame(frame); })) {
      ++reg(kStatTsctc);
    } else {
      ++counters_.tx_bad_offload;
      ++reg(kStatTsctfc);
    }
    return;
  }
  std::span<uint8_t> frame(packet_.bytes);
  const OffloadContext& c = checksum_context_;
  bool ok = true;
  if (packet_.ip_checksum) ok &= insert_checksum(frame, c.ip_start, c.ip_offset, c.ip_end);
  if (packet_.l4_checksum) ok &= insert_checksum(frame, c.l4_start, c.l4_offset, c.l4_end);
  if (packet_.legacy_checksum) ok &= insert_checksum(frame, packet_.legacy_start, packet_.legacy_offset, 0);
  if (!ok) ++counters_.tx_bad_offload;  // the frame goes as the guest made it
  send_frame(frame);
}

void E1000Device::send_frame(std::span<uint8_t> frame) {
  if (frame.size() < 14 || !phy_.link()) return;  // a runt, or no cable
  VirtioNetHeader header{};
  std::array<uint8_t, 4> tag{};
  std::vector<iovec> iov;
  if (backend_->offloads()) iov.push_back({&header, sizeof header});  // finished frames: no offloads
  bool insert_tag = packet_.vlan && (reg(kCtrl) & kCtrlVme);
  if (insert_tag) {  // the tag goes in after the addresses
    uint16_t vet = static_cast<uint16_t>(reg(kVet)), tci = packet_.vlan_tag;
    tag = {static_cast<uint8_t>(vet >> 8), static_cast<uint8_t>(vet), static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)};
    iov.push_back({frame.data(), 12});
    iov.push_back({tag.data(), tag.size()});
    iov.push_back({frame.data() + 12, frame.size() - 12});
  } else {
    iov.push_back({frame.data(), frame.size()});
  }
  size_t bytes = frame.size() + (insert_tag ? tag.size() : 0);
  if (!backend_->send(0, iov)) {
    ++counters_.tx_refused;
    return;
  }
  ++counters_.tx_frames;
  counters_.tx_bytes += bytes;
  count_frame(kStatGptc, kStatGotcl, kStatPtc64, frame);
  ++reg(kStatTpt);
  uint64_t total = (static_cast<uint64_t>(reg(kStatTotl + 4)) << 32 | reg(kStatTotl)) + bytes + kFcs;
  reg(kStatTotl) = static_cast<uint32_t>(total);
  reg(kStatTotl + 4) = static_cast<uint32_t>(total >> 32);
  if (frame[0] & 1) ++reg(std::all_of(frame.begin(), frame.begin() + 6, [](uint8_t b) { return b == 0xff; }) ? kStatBptc : kStatMptc);
}

void E1000Device::count_frame(uint32_t packets, uint32_t octets_low, uint32_t size_bins, std::span<const uint8_t> frame) {
  ++reg(packets);
  uint64_t octets = (static_cast<uint64_t>(reg(octets_low + 4)) << 32 | reg(octets_low)) + frame.size() + kFcs;
  reg(octets_low) = static_cast<uint32_t>(octets);
  reg(octets_low + 4) = static_cast<uint32_t>(octets >> 32);
  ++reg(size_bins + 4 * size_bin(frame.size() + kFcs));
}

// --- Receive ---------------------------------------------------------------------------------

void E1000Device::watch_backend(bool on) {
  if (watching_ == on) return;
  watching_ = on;
  update_events();
}

void E1000Device::update_events() {
  loop_.modify(backend_->fd(0), (watching_ ? uint32_t{EPOLLIN} : 0u) | (congested_ ? uint32_t{EPOLLOUT} : 0u));
}

uint32_t E1000Device::rx_buffer_size() const {
  uint32_t rctl = reg(kRctl), code = (rctl >> kRctlBsizeShift) & 3;
  static constexpr uint32_t kSizes[2][4] = {{2048, 1024, 512, 256}, {2048, 16384, 8192, 4096}};
  return kSizes[(rctl & kRctlBsex) ? 1 : 0][code];
}

void E1000Device::receive() {
  const size_t header = backend_->offloads() ? sizeof(VirtioNetHeader) : 0;
  for (int frames = 0; frames < 256; ++frames) {  // a bounded batch, so registers are served too
    if (!rx_length_) {
      rx_length_ = backend_->receive(0, rx_frame_);
      if (!rx_length_) break;
      if (rx_length_ <= header) {
        rx_length_ = 0;
        continue;
      }
    }
    if (!deliver(std::span<const uint8_t>(rx_frame_).subspan(header, rx_length_ - header))) {
      watch_backend(false);  // until the driver gives buffers (RDT) or enables the receiver
      return;
    }
    rx_length_ = 0;
  }
  watch_backend(true);
}

bool E1000Device::accepts(std::span<const uint8_t> frame) const {
  uint32_t rctl = reg(kRctl);
  bool tagged = be16(frame.data() + 12) == (reg(kVet) & 0xffff);
  if ((rctl & kRctlVfe) && tagged && frame.size() >= 16) {
    uint32_t vid = be16(frame.data() + 14) & 0xfff;
    if (!((reg(kVfta + 4 * (vid >> 5)) >> (vid & 31)) & 1)) return false;
  }
  const uint8_t* dst = frame.data();
  bool broadcast = std::all_of(dst, dst + 6, [](uint8_t b) { return b == 0xff; });
  if (broadcast && (rctl & kRctlBam)) return true;
  if ((dst[0] & 1) ? (rctl & kRctlMpe) : (rctl & kRctlUpe)) return true;
  uint32_t low = static_cast<uint32_t>(dst[0] | dst[1] << 8 | dst[2] << 16) | static_cast<uint32_t>(dst[3]) << 24;
  uint32_t high = static_cast<uint32_t>(dst[4] | dst[5] << 8);
  for (uint32_t n = 0; n < kRaEntries; ++n)
    if ((reg(kRa + 8 * n + 4) & kRahAv) && reg(kRa + 8 * n) == low && (reg(kRa + 8 * n + 4) & 0xffff) == high) return true;
  // The multicast table: 12 bits of the address, which ones by RCTL.MO.
  static constexpr int kShift[4] = {4, 3, 2, 0};
  uint32_t mo = (rctl >> kRctlMoShift) & 3;
  uint32_t hash = ((dst[4] >> kShift[mo]) | (static_cast<uint32_t>(dst[5]) << (8 - kShift[mo]))) & 0xfff;
  return (reg(kMta + 4 * (hash >> 5)) >> (hash & 31)) & 1;
}

bool E1000Device::deliver(std::span<const uint8_t> frame) {
  uint32_t rctl = reg(kRctl);
  if (!(rctl & kRctlEn) || !phy_.link()) {  // a receiver that is off drops what arrives
    ++reg(kStatMpc);
    return true;
  }
  if (!memory_ || !(pci_command_ & kCommandBusMaster)) return false;
  if (frame.size() < 14) return true;
  bool tagged = be16(frame.data() + 12) == (reg(kVet) & 0xffff);
  size_t limit = (rctl & kRctlLpe) ? kMaxLongFrame : kMaxFrame + (tagged ? 4 : 0);
  if (frame.size() > limit && (!(rctl & kRctlSbp) || frame.size() > kMaxLongFrame)) {
    ++counters_.rx_oversize;  // QEMU CVE-2012-6075: the driver sized its buffers for this limit
    ++reg(kStatRoc);
    return true;
  }
  if (!accepts(frame)) {
    ++counters_.rx_filtered;
    return true;
  }
  // What goes to the guest: the frame without its VLAN tag when the driver strips tags, padded
  // to the minimum, and the FCS unless the driver has it stripped.
  std::vector<uint8_t> bytes;
  uint8_t status = kRxStatusEop | kRxStatusIxsm;
  uint16_t special = 0;
  if ((reg(kCtrl) & kCtrlVme) && tagged && frame.size() >= 18) {
    special = be16(frame.data() + 14);
    status |= kRxStatusVp;
    bytes.assign(frame.begin(), frame.begin() + 12);
    bytes.insert(bytes.end(), frame.begin() + 16, frame.end());
  } else {
    bytes.assign(frame.begin(), frame.end());
  }
  if (bytes.size() < kMinFrame) bytes.resize(kMinFrame, 0);
  size_t counted = bytes.size();
  if (!(rctl & kRctlSecrc)) {
    uint32_t crc = ethernet_crc(bytes);
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(crc >> (8 * i)));
  }
  uint32_t size = ring_size(kRdlen), head = reg(kRdh), tail = reg(kRdt);
  if (size == 0 || head >= size || tail >= size) {
    ++counters_.ring_invalid;
    return true;
  }
  uint32_t buffer = rx_buffer_size();
  uint32_t needed = static_cast<uint32_t>((bytes.size() + buffer - 1) / buffer);
  uint32_t available = (tail + size - head) % size;  // RDH == RDT: none
  if (available < needed) {
    ++reg(kStatRnbc);
    raise(kIntRxo);
    return false;  // it waits (the host end holds the rest) until the driver returns buffers
  }
  uint64_t base = static_cast<uint64_t>(reg(kRdbah)) << 32 | reg(kRdbal);
  size_t at = 0;
  for (uint32_t i = 0; i < needed; ++i) {
    uint64_t descriptor = base + kDescriptor * head;
    uint8_t d[kDescriptor];
    if (!dma_read(descriptor, d, sizeof d)) {
      ++counters_.dma_refused;  // a ring outside guest RAM: the frame is lost, nothing is written
      return true;
    }
    uint32_t chunk = static_cast<uint32_t>(std::min<size_t>(buffer, bytes.size() - at));
    uint64_t address = le64(d);
    // A buffer outside RAM (or at 0, a descriptor the driver skips) is consumed without data.
    if (address && !dma_write(address, bytes.data() + at, chunk)) ++counters_.dma_refused;
    bool last = i + 1 == needed;
    uint8_t writeback[8] = {static_cast<uint8_t>(chunk), static_cast<uint8_t>(chunk >> 8), 0, 0,
                            static_cast<uint8_t>(kRxStatusDd | (last ? status : 0)), 0,
                            static_cast<uint8_t>(last ? special : 0), static_cast<uint8_t>(last ? special >> 8 : 0)};
    // Length and special first, the status byte (with DD) last: the driver polls DD.
    dma_write(descriptor + 8, writeback, 4);
    dma_write(descriptor + 13, writeback + 5, 3);
    dma_write(descriptor + 12, writeback + 4, 1);
    at += chunk;
    head = (head + 1) % size;
  }
  reg(kRdh) = head;
  ++counters_.rx_frames;
  counters_.rx_bytes += counted;
  count_frame(kStatGprc, kStatGorcl, kStatPrc64, std::span<const uint8_t>(bytes.data(), counted));
  ++reg(kStatTpr);
  uint64_t total = (static_cast<uint64_t>(reg(kStatTorl + 4)) << 32 | reg(kStatTorl)) + counted + kFcs;
  reg(kStatTorl) = static_cast<uint32_t>(total);
  reg(kStatTorl + 4) = static_cast<uint32_t>(total >> 32);
  if (bytes[0] & 1) ++reg(std::all_of(bytes.begin(), bytes.begin() + 6, [](uint8_t b) { return b == 0xff; }) ? kStatBprc : kStatMprc);
  uint32_t left = (tail + size - head) % size;
  uint32_t threshold = size >> (((rctl >> kRctlRdmtsShift) & 3) + 1);
  raise(kIntRxt0 | (left <= threshold ? kIntRxdmt0 : 0));
  return true;
}

}  // namespace bulkhead::device
