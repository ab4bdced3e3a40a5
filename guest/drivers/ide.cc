#include "drivers/ide.h"

#include "arch.h"
#include "dma.h"

namespace guest {

namespace {
constexpr uint8_t kBsy = 0x80, kDrq = 0x08, kErr = 0x01;
constexpr uint8_t kBmStart = 0x01, kBmToMemory = 0x08, kBmInterrupt = 0x04, kBmError = 0x02;
constexpr int kMaxPrd = 512;
constexpr uint64_t kSpins = 50'000'000;
}  // namespace

bool IdeDriver::init() {
  if (!pci_find(kVendor, kDevice, 0, &fn_)) return false;
  pci_write16(fn_, 0x04, static_cast<uint16_t>(pci_read16(fn_, 0x04) | 0x5));  // I/O, bus master
  bm_ = static_cast<uint16_t>(pci_read32(fn_, 0x20) & ~3u);
  prd_ = static_cast<Prd*>(dma_alloc(kMaxPrd * sizeof(Prd), 65536));
  return bm_ != 0;
}

void IdeDriver::set_bus_master(bool on) {
  uint16_t command = pci_read16(fn_, 0x04);
  pci_write16(fn_, 0x04, static_cast<uint16_t>(on ? command | 0x4 : command & ~0x4));
}

void IdeDriver::select(int drive) {
  channel_ = drive / 2;
  drive_ = drive % 2;
  outb(static_cast<uint16_t>(command_port() + 6), static_cast<uint8_t>(0xa0 | drive_ << 4));
  outb(control_port(), 0x00);  // interrupts on
}

uint8_t IdeDriver::wait_ready() {
  uint8_t s = 0;
  for (uint64_t i = 0; i < kSpins; ++i) {
    s = inb(control_port());  // alternate status: leaves the interrupt pending
    if (!(s & kBsy)) break;
    pause();
  }
  return s;
}

void IdeDriver::soft_reset() {
  outb(control_port(), 0x04);
  outb(control_port(), 0x00);
  wait_ready();
}

void IdeDriver::load_address(uint64_t lba, uint32_t count, bool ext) {
  const uint16_t p = command_port();
  if (ext) {
    outb(static_cast<uint16_t>(p + 2), static_cast<uint8_t>(count >> 8));
    outb(static_cast<uint16_t>(p + 3), static_cast<uint8_t>(lba >> 24));
    outb(static_cast<uint16_t>(p + 4), static_cast<uint8_t>(lba >> 32));
    outb(static_cast<uint16_t>(p + 5), static_cast<uint8_t>(lba >> 40));
  }
  outb(static_cast<uint16_t>(p + 2), static_cast<uint8_t>(count));
  outb(static_cast<uint16_t>(p + 3), static_cast<uint8_t>(lba));
  outb(static_cast<uint16_t>(p + 4), static_cast<uint8_t>(lba >> 8));
  outb(static_cast<uint16_t>(p + 5), static_cast<uint8_t>(lba >> 16));
  const uint8_t high = ext ? 0 : static_cast<uint8_t>((lba >> 24) & 0x0f);
  outb(static_cast<uint16_t>(p + 6), static_cast<uint8_t>(0xe0 | drive_ << 4 | high));
}

void IdeDriver::issue(uint8_t command, uint64_t lba, uint32_t count) {
  load_address(lba, count, false);
  outb(static_cast<uint16_t>(command_port() + 7), command);
}

IdeDriver::Result IdeDriver::identify(uint16_t* words, bool packet) {
  outb(static_cast<uint16_t>(command_port() + 7), packet ? 0xa1 : 0xec);
  uint8_t s = wait_ready();
  if (!(s & kDrq) || (s & kErr)) return {false, status(), inb(static_cast<uint16_t>(command_port() + 1)), 0};
  insw(command_port(), words, 256);
  s = wait_ready();
  return {true, status(), 0, 0};
}

IdeDriver::Result IdeDriver::non_data(uint8_t command, uint8_t feature, uint8_t count) {
  const uint16_t p = command_port();
  outb(static_cast<uint16_t>(p + 1), feature);
  outb(static_cast<uint16_t>(p + 2), count);
  outb(static_cast<uint16_t>(p + 7), command);
  wait_ready();
  uint8_t s = status();
  return {!(s & kErr), s, inb(static_cast<uint16_t>(p + 1)), 0};
}

IdeDriver::Result IdeDriver::pio(bool write, uint64_t lba, uint32_t count, void* buffer, bool ext, bool multiple,
                                 bool dword) {
  const uint16_t p = command_port();
  load_address(lba, count, ext);
  uint8_t command;
  if (multiple) {
    command = write ? (ext ? 0x39 : 0xc5) : (ext ? 0x29 : 0xc4);
  } else {
    command = write ? (ext ? 0x34 : 0x30) : (ext ? 0x24 : 0x20);
  }
  outb(static_cast<uint16_t>(p + 7), command);
  auto* at = static_cast<uint8_t*>(buffer);
  uint32_t left = count ? count : (ext ? 65536 : 256);
  while (left) {
    uint8_t s = wait_ready();
    if ((s & kErr) || !(s & kDrq)) return {false, status(), inb(static_cast<uint16_t>(p + 1)), 0};
    // A DRQ block: one sector, or up to 16 with READ/WRITE MULTIPLE (set to 16 by the scenario).
    uint32_t sectors = multiple ? (left < 16 ? left : 16) : 1;
    uint32_t bytes = sectors * 512;
    if (write) {
      dword ? outsl(p, at, bytes / 4) : outsw(p, at, bytes / 2);
    } else {
      dword ? insl(p, at, bytes / 4) : insw(p, at, bytes / 2);
    }
    at += bytes;
    left -= sectors;
  }
  uint8_t s = wait_ready();
  s = status();
  return {!(s & (kErr | kDrq)), s, inb(static_cast<uint16_t>(p + 1)), 0};
}

void IdeDriver::start_dma(bool write, uint32_t table) {
  outb(bm_port(), 0);  // stopped
  outb(static_cast<uint16_t>(bm_port() + 2), kBmInterrupt | kBmError);  // clear both
  outl(static_cast<uint16_t>(bm_port() + 4), table);
  outb(bm_port(), write ? 0 : kBmToMemory);
}

IdeDriver::Result IdeDriver::finish_dma(bool write) {
  uint8_t bm = 0;
  for (uint64_t i = 0; i < kSpins; ++i) {
    bm = inb(static_cast<uint16_t>(bm_port() + 2));
    if (bm & (kBmInterrupt | kBmError)) break;
    pause();
  }
  outb(bm_port(), write ? 0 : kBmToMemory);  // stop the engine
  uint8_t s = wait_ready();
  s = status();
  outb(static_cast<uint16_t>(bm_port() + 2), kBmInterrupt | kBmError);
  return {!(s & (kErr | kDrq)) && !(bm & kBmError), s, inb(static_cast<uint16_t>(command_port() + 1)), bm};
}

IdeDriver::Result IdeDriver::dma_raw(bool write, uint64_t lba, uint32_t count, uint32_t table, bool ext) {
  start_dma(write, table);
  load_address(lba, count, ext);
  outb(static_cast<uint16_t>(command_port() + 7), write ? (ext ? 0x35 : 0xca) : (ext ? 0x25 : 0xc8));
  outb(bm_port(), static_cast<uint8_t>((write ? 0 : kBmToMemory) | kBmStart));
  return finish_dma(write);
}

IdeDriver::Result IdeDriver::dma(bool write, uint64_t lba, uint32_t count, void* buffer, bool ext, uint32_t piece) {
  uint64_t bytes = static_cast<uint64_t>(count) * 512, address = phys(buffer);
  int n = 0;
  for (uint64_t done = 0; done < bytes && n < kMaxPrd; ++n) {
    uint32_t take = static_cast<uint32_t>(bytes - done < piece ? bytes - done : piece);
    prd_[n] = {static_cast<uint32_t>(address + done), take & 0xffff};
    done += take;
  }
  prd_[n - 1].control |= 0x80000000u;
  return dma_raw(write, lba, count, static_cast<uint32_t>(phys(prd_)), ext);
}

IdeDriver::Result IdeDriver::packet(const uint8_t* cdb, void* buffer, uint32_t length, bool use_dma, uint16_t byte_limit,
                                    uint32_t* transferred) {
  const uint16_t p = command_port();
  *transferred = 0;
  if (use_dma) {
    prd_[0] = {static_cast<uint32_t>(phys(buffer)), (length & 0xffff) | 0x80000000u};
    start_dma(false, static_cast<uint32_t>(phys(prd_)));
  }
  outb(static_cast<uint16_t>(p + 1), use_dma ? 1 : 0);
  outb(static_cast<uint16_t>(p + 4), static_cast<uint8_t>(byte_limit));
  outb(static_cast<uint16_t>(p + 5), static_cast<uint8_t>(byte_limit >> 8));
  outb(static_cast<uint16_t>(p + 7), 0xa0);
  uint8_t s = wait_ready();
  if (!(s & kDrq)) return {false, status(), inb(static_cast<uint16_t>(p + 1)), 0};
  outsw(p, cdb, 6);
  if (use_dma) {
    outb(bm_port(), kBmToMemory | kBmStart);
    Result r = finish_dma(false);
    if (r.ok) *transferred = length;
    return r;
  }
  auto* at = static_cast<uint8_t*>(buffer);
  for (;;) {
    s = wait_ready();
    if (!(s & kDrq)) break;
    uint32_t bytes = inb(static_cast<uint16_t>(p + 4)) | inb(static_cast<uint16_t>(p + 5)) << 8;
    if (bytes % 2 == 0 && *transferred + bytes <= length) {  // one string read for the block
      insw(p, at + *transferred, bytes / 2);
      *transferred += bytes;
      continue;
    }
    for (uint32_t i = 0; i < bytes; i += 2) {
      uint16_t w = inw(p);
      if (*transferred + i < length) at[*transferred + i] = static_cast<uint8_t>(w);
      if (*transferred + i + 1 < length) at[*transferred + i + 1] = static_cast<uint8_t>(w >> 8);
    }
    *transferred += bytes;
  }
  s = status();
  return {!(s & kErr), s, inb(static_cast<uint16_t>(p + 1)), 0};
}

}  // namespace guest
