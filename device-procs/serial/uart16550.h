// A 16550A UART as PC software sees it: registers, divisor latch, 16-byte FIFOs with
// trigger levels and character timeout, interrupt identification and priorities, modem
// lines with loopback, scratch register. Pure state: no I/O, no clock.
//
// Transmission is instantaneous into a bounded output buffer that the backend drains. THRE
// is set while the buffer has room for a whole transmit FIFO, so a well-behaved guest waits
// when it fills (no data is lost); bytes written beyond its capacity anyway are counted and
// dropped (no unbounded memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>

#include "device-procs/common/irq_line.h"

namespace bulkhead::device {

class Uart16550 {
 public:
  static constexpr size_t kFifoSize = 16;
  static constexpr size_t kDefaultOutputCapacity = 64 * 1024;
  static constexpr uint32_t kRegisterCount = 8;
  static constexpr uint64_t kInputClockHz = 1843200;  // 115200 baud with divisor 1

  explicit Uart16550(IrqSink& irq, size_t output_capacity = kDefaultOutputCapacity);

  uint8_t read(uint8_t offset);
  void write(uint8_t offset, uint8_t value);

  // Host side, receive: how many bytes the FIFO takes now (0 in loopback), and delivery.
  size_t rx_space() const;
  void receive(std::span<const uint8_t> bytes);

  // Host side, transmit: bytes waiting for the backend.
  size_t output_pending() const { return output_.size(); }
  // Copies up to `max` pending bytes to `out` without consuming them.
  size_t peek_output(uint8_t* out, size_t max) const;
  void consume_output(size_t n);
  uint64_t dropped_output() const { return dropped_output_; }

  // Character timeout: the device arms a timer for char_timeout_ns() whenever
  // wants_timeout() and rx_activity() changed; on expiry it calls fire_timeout().
  bool wants_timeout() const;
  uint64_t rx_activity() const { return rx_activity_; }
  uint64_t char_timeout_ns() const;
  void fire_timeout();

  bool irq_level() const { return irq_level_; }
  uint16_t divisor() const { return divisor_; }

 private:
  uint8_t interrupt_id() const;
  uint8_t line_status() const;
  uint8_t modem_status_lines() const;
  bool thr_empty() const;
  void push_rx(uint8_t byte);
  void transmit(uint8_t byte);
  void update_modem_deltas(uint8_t old_lines);
  void update_irq();

  IrqSink& irq_;
  size_t output_capacity_;

  uint8_t ier_ = 0, lcr_ = 0, mcr_ = 0, scr_ = 0;
  uint8_t lsr_errors_ = 0;     // OE, PE, FE, BI: cleared by reading LSR
  uint8_t msr_deltas_ = 0;     // DCTS, DDSR, TERI, DDCD: cleared by reading MSR
  uint16_t divisor_ = 12;      // 9600 baud, the reset value firmware usually leaves
  bool fifo_enabled_ = false;
  size_t rx_trigger_ = 1;
  bool thr_interrupt_ = false;  // "THR empty" interrupt pending
  bool timeout_pending_ = false;
  bool irq_level_ = false;
  std::deque<uint8_t> rx_;
  std::deque<uint8_t> output_;
  uint64_t dropped_output_ = 0;
  uint64_t rx_activity_ = 0;
};

}  // namespace bulkhead::device
