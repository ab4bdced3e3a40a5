// The guest's driver for a 16550A UART (Bulkhead's serial device process, or QEMU's).
#pragma once

#include <stdint.h>

#include "arch.h"

namespace guest {

class Uart16550 {
 public:
  static constexpr uint16_t kCom1 = 0x3f8;
  static constexpr uint8_t kIrqCom1 = 4;

  // Register offsets (DLAB=0 unless noted).
  static constexpr uint16_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
  static constexpr uint8_t kIerRxData = 0x01, kIerThrEmpty = 0x02, kIerLineStatus = 0x04;
  static constexpr uint8_t kLsrDataReady = 0x01, kLsrThrEmpty = 0x20, kLsrTxEmpty = 0x40;
  static constexpr uint8_t kIirNoInterrupt = 0x01, kIirIdMask = 0x0e;
  static constexpr uint8_t kIirThrEmpty = 0x02, kIirRxData = 0x04, kIirLineStatus = 0x06, kIirRxTimeout = 0x0c;
  static constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut2 = 0x08, kMcrLoop = 0x10;

  static constexpr int kFifoSize = 16;

  explicit constexpr Uart16550(uint16_t base) : base_(base) {}

  // 115200 8N1, FIFOs on (trigger 1 byte), OUT2 on, interrupts off.
  void init() {
    write(kIer, 0);
    write(kLcr, 0x80);
    write(0, 1);  // divisor latch low: 115200 baud
    write(1, 0);
    write(kLcr, 0x03);
    write(kIirFcr, 0x07);
    write(kMcr, kMcrDtr | kMcrRts | kMcrOut2);
    tx_credit_ = 0;
  }
  // Once THRE is seen the 16-byte transmit FIFO is empty: fill it before polling again.
  void put(char c) {
    if (tx_credit_ == 0) {
      while (!(read(kLsr) & kLsrThrEmpty)) pause();
      tx_credit_ = kFifoSize;
    }
    --tx_credit_;
    write(kRbrThr, static_cast<uint8_t>(c));
  }
  bool can_read() { return read(kLsr) & kLsrDataReady; }
  uint8_t get() {
    while (!can_read()) pause();
    return read(kRbrThr);
  }
  uint8_t read(uint16_t reg) { return inb(base_ + reg); }
  void write(uint16_t reg, uint8_t value) { outb(base_ + reg, value); }

 private:
  uint16_t base_;
  int tx_credit_ = 0;
};

}  // namespace guest
