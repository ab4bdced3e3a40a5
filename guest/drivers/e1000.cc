#include "drivers/e1000.h"

#include <string.h>

#include "arch.h"
#include "dma.h"

namespace guest {

namespace {
constexpr uint32_t kCtrl = 0x0, kStatus = 0x8, kEecd = 0x10, kEerd = 0x14, kMdic = 0x20, kIcr = 0xc0, kImc = 0xd8,
                   kRctl = 0x100, kTctl = 0x400, kRdbal = 0x2800, kRdbah = 0x2804, kRdlen = 0x2808, kRdh = 0x2810,
                   kRdt = 0x2818, kTdbal = 0x3800, kTdbah = 0x3804, kTdlen = 0x3808, kTdh = 0x3810, kTdt = 0x3818;
constexpr uint32_t kEecdSk = 1, kEecdCs = 2, kEecdDi = 4, kEecdDo = 8, kEecdReq = 0x40, kEecdGnt = 0x80;
constexpr uint8_t kCmdEop = 0x01, kCmdIfcs = 0x02, kCmdRs = 0x08;
constexpr uint8_t kStatusDd = 0x01;
}  // namespace

uint32_t E1000Driver::reg(uint32_t offset) const { return mmio_read32(regs_ + offset); }
void E1000Driver::set(uint32_t offset, uint32_t value) { mmio_write32(regs_ + offset, value); }
uint32_t E1000Driver::io_read(uint32_t offset) {
  outl(io_, offset);
  return inl(static_cast<uint16_t>(io_ + 4));
}
void E1000Driver::io_write(uint32_t offset, uint32_t value) {
  outl(io_, offset);
  outl(static_cast<uint16_t>(io_ + 4), value);
}

void E1000Driver::eecd_bit(uint32_t eecd, bool bit) {
  uint32_t v = (eecd & ~kEecdDi) | (bit ? kEecdDi : 0);
  set(kEecd, v);
  set(kEecd, v | kEecdSk);
  set(kEecd, v);
}

uint16_t E1000Driver::eeprom_microwire(uint8_t word) {
  set(kEecd, kEecdReq);
  for (int i = 0; i < 1000 && !(reg(kEecd) & kEecdGnt); ++i) pause();
  uint32_t eecd = kEecdReq | kEecdCs;
  set(kEecd, eecd);
  uint32_t command = 0b110u << 6 | (word & 0x3f);
  for (int i = 8; i >= 0; --i) eecd_bit(eecd, (command >> i) & 1);
  uint16_t value = 0;
  for (int i = 0; i < 16; ++i) {
    set(kEecd, eecd | kEecdSk);
    value = static_cast<uint16_t>(value << 1 | ((reg(kEecd) & kEecdDo) ? 1 : 0));
    set(kEecd, eecd);
  }
  set(kEecd, 0);  // chip select off, request released
  return value;
}

uint16_t E1000Driver::eeprom_eerd(uint8_t word) {
  set(kEerd, static_cast<uint32_t>(word) << 8 | 1);
  uint32_t v = 0;
  for (int i = 0; i < 1000 && !((v = reg(kEerd)) & 0x10); ++i) pause();
  return static_cast<uint16_t>(v >> 16);
}

uint16_t E1000Driver::phy_read(uint8_t phy, uint8_t r, bool* error) {
  set(kMdic, static_cast<uint32_t>(r & 31) << 16 | static_cast<uint32_t>(phy & 31) << 21 | 1u << 27);
  uint32_t v = 0;
  for (int i = 0; i < 1000 && !((v = reg(kMdic)) & (1u << 28)); ++i) pause();
  *error = (v & (1u << 30)) || !(v & (1u << 28));
  return static_cast<uint16_t>(v);
}

bool E1000Driver::link_up() { return reg(kStatus) & 2; }


bool E1000Driver::init() {
  if (!pci_find(kVendor, kDevice, 0, &fn_)) return false;
  pci_write16(fn_, 0x04, static_cast<uint16_t>(pci_read16(fn_, 0x04) | 0x7));  // I/O, memory, bus master
  regs_ = pci_bar(fn_, 0);
  io_ = static_cast<uint16_t>(pci_read32(fn_, 0x14) & ~3u);
  if (!regs_ || !io_) return false;
  // The global reset through IODATA, as Linux issues it on an 82540.
  set(kImc, ~0u);
  set(kRctl, 0);
  set(kTctl, 0x8);
  io_write(kCtrl, io_read(kCtrl) | (1u << 26));
  set(kImc, ~0u);
  (void)reg(kIcr);
  for (int i = 0; i < 3; ++i) {
    uint16_t w = eeprom_microwire(static_cast<uint8_t>(i));
    mac_[2 * i] = static_cast<uint8_t>(w), mac_[2 * i + 1] = static_cast<uint8_t>(w >> 8);
  }
  tx_ = static_cast<Descriptor*>(dma_alloc(sizeof(Descriptor) * kRing, 128));
  rx_ = static_cast<Descriptor*>(dma_alloc(sizeof(Descriptor) * kRing, 128));
  rx_buffers_ = static_cast<uint8_t*>(dma_alloc(static_cast<size_t>(kBuffer) * kRing, 64));
  restart_rings();
  set(kRctl, 0x8002);      // enabled, broadcasts, 2 KiB buffers; unicast by the address filter
  set(kTctl, 0x0103f0fa);          // enabled, pad short packets, as Linux writes it
  return true;
}

void E1000Driver::restart_rings() {
  set(kRctl, reg(kRctl) & ~2u);
  set(kTctl, reg(kTctl) & ~2u);
  memset(tx_, 0, sizeof(Descriptor) * kRing);
  for (uint16_t i = 0; i < kRing; ++i) rx_[i] = {phys(rx_buffers_ + i * kBuffer), 0, 0, 0, 0, 0, 0};
  tx_tail_ = tx_clean_ = rx_next_ = rx_unreturned_ = 0;
  set(kTdbal, static_cast<uint32_t>(phys(tx_)));
  set(kTdbah, static_cast<uint32_t>(phys(tx_) >> 32));
  set(kTdlen, sizeof(Descriptor) * kRing);
  set(kTdh, 0);
  set(kTdt, 0);
  set(kRdbal, static_cast<uint32_t>(phys(rx_)));
  set(kRdbah, static_cast<uint32_t>(phys(rx_) >> 32));
  set(kRdlen, sizeof(Descriptor) * kRing);
  set(kRdh, 0);
  set(kRdt, kRing - 1);
  set(kRctl, reg(kRctl) | 2u);
  set(kTctl, reg(kTctl) | 2u);
}

bool E1000Driver::submit(const void* frame, uint32_t length) {
  uint16_t next = static_cast<uint16_t>((tx_tail_ + 1) % kRing);
  if (next == tx_clean_) return false;
  tx_[tx_tail_] = {phys(frame), static_cast<uint16_t>(length), 0, static_cast<uint8_t>(kCmdEop | kCmdIfcs | kCmdRs), 0, 0, 0};
  tx_tail_ = next;
  __atomic_thread_fence(__ATOMIC_RELEASE);
  set(kTdt, tx_tail_);
  return true;
}

int E1000Driver::reap() {
  int n = 0;
  while (tx_clean_ != tx_tail_ && (__atomic_load_n(&tx_[tx_clean_].status, __ATOMIC_ACQUIRE) & kStatusDd)) {
    tx_[tx_clean_].status = 0;
    tx_clean_ = static_cast<uint16_t>((tx_clean_ + 1) % kRing);
    ++n;
  }
  return n;
}

bool E1000Driver::send(const void* frame, uint32_t length) {
  if (!submit(frame, length)) return false;
  for (int i = 0; i < 10'000'000 && tx_clean_ != tx_tail_; ++i) reap(), pause();
  return tx_clean_ == tx_tail_;
}

bool E1000Driver::send_descriptors(const Descriptor* d, int count, uint64_t timeout_us, uint64_t tsc_per_us) {
  for (int i = 0; i < count; ++i) {
    tx_[tx_tail_] = d[i];
    tx_tail_ = static_cast<uint16_t>((tx_tail_ + 1) % kRing);
  }
  __atomic_thread_fence(__ATOMIC_RELEASE);
  set(kTdt, tx_tail_);
  uint64_t deadline = rdtsc() + timeout_us * tsc_per_us;
  while (reg(kTdh) != tx_tail_)
    if (rdtsc() > deadline) return false;
    else pause();
  for (uint16_t i = tx_clean_; i != tx_tail_; i = static_cast<uint16_t>((i + 1) % kRing)) tx_[i].status = 0;
  tx_clean_ = tx_tail_;
  return true;
}

uint32_t E1000Driver::receive(uint8_t* out, uint32_t size) {
  Descriptor& d = rx_[rx_next_];
  if (!(__atomic_load_n(&d.status, __ATOMIC_ACQUIRE) & kStatusDd)) return 0;
  uint32_t length = d.length >= 4 ? d.length - 4u : 0;  // without the FCS
  if (length > size) length = size;
  memcpy(out, rx_buffers_ + rx_next_ * kBuffer, length);
  d.status = 0;
  // Buffers go back in batches, as Linux returns them (E1000_RX_BUFFER_WRITE): a register
  // write is a VM exit. The descriptor just read is the driver's spare now.
  if (++rx_unreturned_ >= kReturnBatch) {
    set(kRdt, rx_next_);
    rx_unreturned_ = 0;
  }
  rx_next_ = static_cast<uint16_t>((rx_next_ + 1) % kRing);
  return length;
}

}  // namespace guest
