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
#include <span>
#include <vector>

#include "device-procs/common/irq_line.h"

namespace bulkhead::device {

class Uart16550 {
 public:
  static constexpr size_t kFifoSize = 16;
  static constexpr size_t kDefaultOutputCapacity = 64 * 1024;
  static constexpr uint32_t kRegisterCount = 8;
  static constexpr uint64_t kInputClockHz = 1843200;  // 115200 baud with divisor 1

  // Everything the UART is, but the bytes of its output buffer: a plain struct, so that a
  // device process can keep it where its successor finds it (StatePage).
  struct Registers {
    uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0;
    uint8_t lsr_errors = 0;    // OE, PE, FE, BI: cleared by reading LSR
    uint8_t msr_deltas = 0;    // DCTS, DDSR, TERI, DDCD: cleared by reading MSR
    uint8_t fifo_enabled = 0;
    uint8_t thr_interrupt = 0;  // "THR empty" interrupt pending
    uint8_t timeout_pending = 0;
    uint8_t irq_level = 0;
    uint8_t rx_trigger = 1;
    uint8_t rx_count = 0, rx_first = 0;  // the receive FIFO: rx[rx_first], then on, circularly
    uint8_t rx[kFifoSize] = {};
    uint16_t divisor = 12;     // 9600 baud, the reset value firmware usually leaves
    uint64_t output_head = 0;  // bytes ever buffered for output; output_tail: ever consumed
    uint64_t output_tail = 0;
    uint64_t dropped_output = 0;
    uint64_t rx_activity = 0;
  };

  explicit Uart16550(IrqSink& irq, size_t output_capacity = kDefaultOutputCapacity);

  uint8_t read(uint8_t offset);
  void write(uint8_t offset, uint8_t value);

  // Host side, receive: how many bytes the FIFO takes now (0 in loopback), and delivery.
  size_t rx_space() const;
  void receive(std::span<const uint8_t> bytes);

  // Host side, transmit: bytes waiting for the backend.
  size_t output_pending() const { return static_cast<size_t>(r_.output_head - r_.output_tail); }
  // Copies up to `max` pending bytes to `out` without consuming them.
  size_t peek_output(uint8_t* out, size_t max) const;
  void consume_output(size_t n);
  uint64_t dropped_output() const { return r_.dropped_output; }

  // Character timeout: the device arms a timer for char_timeout_ns() whenever
  // wants_timeout() and rx_activity() changed; on expiry it calls fire_timeout().
  bool wants_timeout() const;
  uint64_t rx_activity() const { return r_.rx_activity; }
  uint64_t char_timeout_ns() const;
  void fire_timeout();

  bool irq_level() const { return r_.irq_level; }
  uint16_t divisor() const { return r_.divisor; }

  // Crash recovery: the registers, and a UART that takes them over (its output buffer then
  // holds what the earlier one had in it, at the same places). Throws InputError if
  // `registers` is not a state a UART can be in.
  const Registers& registers() const { return r_; }
  void restore(const Registers& registers);
  // The output buffer moves to `storage`, which must outlive the UART and becomes its
  // capacity. Only before anything was transmitted: what is in `storage` is the buffer's.
  void use_output_buffer(std::span<uint8_t> storage);

 private:
  uint8_t interrupt_id() const;
  uint8_t line_status() const;
  uint8_t modem_status_lines() const;
  bool thr_empty() const;
  void push_rx(uint8_t byte);
  uint8_t pop_rx();
  void clear_rx();
  void transmit(uint8_t byte);
  void update_modem_deltas(uint8_t old_lines);
  void update_irq();

  IrqSink& irq_;
  std::vector<uint8_t> own_output_;
  std::span<uint8_t> output_;  // a ring: byte i of the stream is at output_[i % size]
  Registers r_;
};

}  // namespace bulkhead::device
