#include "device-procs/serial/uart16550.h"

#include <algorithm>
#include <iterator>

#include "common/error.h"

namespace bulkhead::device {

namespace {
// Register offsets.
constexpr uint8_t kRbrThr = 0, kIer = 1, kIirFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRx = 0x01, kIerThr = 0x02, kIerLineStatus = 0x04, kIerModemStatus = 0x08;
constexpr uint8_t kIirNone = 0x01, kIirModemStatus = 0x00, kIirThr = 0x02, kIirRx = 0x04, kIirLineStatus = 0x06,
                  kIirTimeout = 0x0c, kIirFifoEnabled = 0xc0;
constexpr uint8_t kFcrEnable = 0x01, kFcrClearRx = 0x02;
constexpr uint8_t kLsrDataReady = 0x01, kLsrOverrun = 0x02, kLsrThrEmpty = 0x20, kLsrTxEmpty = 0x40;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10, kMcrMask = 0x1f;
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08;
constexpr uint8_t kTriggerLevels[] = {1, 4, 8, 14};
}  // namespace

Uart16550::Uart16550(IrqSink& irq, size_t output_capacity) : irq_(irq), own_output_(output_capacity), output_(own_output_) {}

void Uart16550::use_output_buffer(std::span<uint8_t> storage) {
  if (r_.output_head) throw std::logic_error("the UART's output buffer moves only while it was never used");
  output_ = storage;
  own_output_ = {};
}

void Uart16550::restore(const Registers& r) {
  bool valid = r.rx_count <= kFifoSize && r.rx_first < kFifoSize &&
               std::find(std::begin(kTriggerLevels), std::end(kTriggerLevels), r.rx_trigger) != std::end(kTriggerLevels) &&
               r.output_head >= r.output_tail && r.output_head - r.output_tail <= output_.size() && !(r.mcr & ~kMcrMask) &&
               !(r.ier & 0xf0) && r.fifo_enabled <= 1 && r.thr_interrupt <= 1 && r.timeout_pending <= 1 && r.irq_level <= 1;
  if (!valid) throw InputError("the saved UART state is not one a 16550A can be in");
  r_ = r;
  // The line as the state says; a process that died just before it signalled signals now
  // (a spurious interrupt at worst, which drivers expect of a 16550).
  irq_.set_level(r_.irq_level);
}

// THR (and in FIFO mode the whole 16-byte transmit FIFO) counts as empty while the output
// buffer can take that much: a driver may write a full FIFO's worth after seeing THRE.
bool Uart16550::thr_empty() const { return output_pending() + (r_.fifo_enabled ? kFifoSize : 1) <= output_.size(); }

uint8_t Uart16550::line_status() const {
  uint8_t lsr = r_.lsr_errors;
  if (r_.rx_count) lsr |= kLsrDataReady;
  if (thr_empty()) lsr |= kLsrThrEmpty | kLsrTxEmpty;
  return lsr;
}

uint8_t Uart16550::modem_status_lines() const {
  if (r_.mcr & kMcrLoop) {
    uint8_t lines = 0;
    if (r_.mcr & kMcrRts) lines |= kMsrCts;
    if (r_.mcr & kMcrDtr) lines |= kMsrDsr;
    if (r_.mcr & kMcrOut1) lines |= kMsrRi;
    if (r_.mcr & kMcrOut2) lines |= kMsrDcd;
    return lines;
  }
  return kMsrCts | kMsrDsr | kMsrDcd;  // a connected peer
}

void Uart16550::update_modem_deltas(uint8_t old_lines) {
  uint8_t now = modem_status_lines();
  uint8_t changed = old_lines ^ now;
  if (changed & kMsrCts) r_.msr_deltas |= kMsrDcts;
  if (changed & kMsrDsr) r_.msr_deltas |= kMsrDdsr;
  if ((old_lines & kMsrRi) && !(now & kMsrRi)) r_.msr_deltas |= kMsrTeri;
  if (changed & kMsrDcd) r_.msr_deltas |= kMsrDdcd;
}

uint8_t Uart16550::interrupt_id() const {
  if ((r_.ier & kIerLineStatus) && r_.lsr_errors) return kIirLineStatus;
  if (r_.ier & kIerRx) {
    if (r_.fifo_enabled ? r_.rx_count >= r_.rx_trigger : r_.rx_count != 0) return kIirRx;
    if (r_.timeout_pending) return kIirTimeout;
  }
  if ((r_.ier & kIerThr) && r_.thr_interrupt) return kIirThr;
  if ((r_.ier & kIerModemStatus) && r_.msr_deltas) return kIirModemStatus;
  return kIirNone;
}

void Uart16550::update_irq() {
  // On a PC the INTR pin reaches the PIC only through the OUT2-gated buffer, and loopback
  // disconnects the modem-control outputs from their pins.
  bool level = interrupt_id() != kIirNone && (r_.mcr & kMcrOut2) && !(r_.mcr & kMcrLoop);
  r_.irq_level = level;
  irq_.set_level(level);
}

void Uart16550::push_rx(uint8_t byte) {
  size_t capacity = r_.fifo_enabled ? kFifoSize : 1;
  if (r_.rx_count >= capacity) {
    r_.lsr_errors |= kLsrOverrun;
    return;
  }
  r_.rx[(r_.rx_first + r_.rx_count++) % kFifoSize] = byte;
  ++r_.rx_activity;
  r_.timeout_pending = false;
}

uint8_t Uart16550::pop_rx() {
  uint8_t byte = r_.rx[r_.rx_first];
  r_.rx_first = static_cast<uint8_t>((r_.rx_first + 1) % kFifoSize);
  --r_.rx_count;
  return byte;
}

void Uart16550::clear_rx() { r_.rx_count = r_.rx_first = 0; }

void Uart16550::transmit(uint8_t byte) {
  if (r_.mcr & kMcrLoop) {
    push_rx(byte);
  } else if (output_pending() < output_.size()) {
    output_[r_.output_head++ % output_.size()] = byte;
  } else {
    ++r_.dropped_output;
  }
}

uint8_t Uart16550::read(uint8_t offset) {
  uint8_t value = 0;
  switch (offset & 7) {
    case kRbrThr:
      if (r_.lcr & kLcrDlab) {
        value = static_cast<uint8_t>(r_.divisor);
      } else if (r_.rx_count) {
        value = pop_rx();
        ++r_.rx_activity;
        r_.timeout_pending = false;
      }
      break;
    case kIer:
      value = (r_.lcr & kLcrDlab) ? static_cast<uint8_t>(r_.divisor >> 8) : r_.ier;
      break;
    case kIirFcr: {
      uint8_t id = interrupt_id();
      value = id | (r_.fifo_enabled ? kIirFifoEnabled : 0);
      if (id == kIirThr) r_.thr_interrupt = false;  // reading IIR acknowledges THRE
      break;
    }
    case kLcr:
      value = r_.lcr;
      break;
    case kMcr:
      value = r_.mcr;
      break;
    case kLsr:
      value = line_status();
      r_.lsr_errors = 0;
      break;
    case kMsr:
      value = modem_status_lines() | r_.msr_deltas;
      r_.msr_deltas = 0;
      break;
    case kScr:
      value = r_.scr;
      break;
  }
  update_irq();
  return value;
}

void Uart16550::write(uint8_t offset, uint8_t value) {
  switch (offset & 7) {
    case kRbrThr:
      if (r_.lcr & kLcrDlab) {
        r_.divisor = static_cast<uint16_t>((r_.divisor & 0xff00) | value);
        break;
      }
      // Writing THR clears the THRE interrupt; the instant transmission then empties THR
      // again. The IRQ line is updated in between so an edge-triggered PIC sees a new edge.
      r_.thr_interrupt = false;
      update_irq();
      transmit(value);
      if (thr_empty()) r_.thr_interrupt = true;
      break;
    case kIer:
      if (r_.lcr & kLcrDlab) {
        r_.divisor = static_cast<uint16_t>((r_.divisor & 0x00ff) | value << 8);
        break;
      }
      // Enabling the THRE interrupt while THR is empty raises it at once.
      if ((value & kIerThr) && !(r_.ier & kIerThr) && thr_empty()) r_.thr_interrupt = true;
      r_.ier = value & 0x0f;
      break;
    case kIirFcr: {
      bool enable = value & kFcrEnable;
      if (enable != r_.fifo_enabled || (value & kFcrClearRx)) {
        clear_rx();
        r_.timeout_pending = false;
      }
      r_.fifo_enabled = enable;
      r_.rx_trigger = kTriggerLevels[value >> 6];
      break;
    }
    case kLcr:
      r_.lcr = value;
      break;
    case kMcr: {
      uint8_t old_lines = modem_status_lines();
      r_.mcr = value & kMcrMask;
      update_modem_deltas(old_lines);
      break;
    }
    case kLsr:
    case kMsr:
      break;  // read-only (factory test registers on some parts)
    case kScr:
      r_.scr = value;
      break;
  }
  update_irq();
}

size_t Uart16550::rx_space() const {
  if (r_.mcr & kMcrLoop) return 0;
  size_t capacity = r_.fifo_enabled ? kFifoSize : 1;
  return r_.rx_count >= capacity ? 0 : capacity - r_.rx_count;
}

void Uart16550::receive(std::span<const uint8_t> bytes) {
  for (uint8_t b : bytes.first(std::min(bytes.size(), rx_space()))) push_rx(b);
  update_irq();
}

size_t Uart16550::peek_output(uint8_t* out, size_t max) const {
  size_t n = std::min(max, output_pending());
  for (size_t i = 0; i < n; ++i) out[i] = output_[(r_.output_tail + i) % output_.size()];
  return n;
}

void Uart16550::consume_output(size_t n) {
  bool was_full = !thr_empty();
  r_.output_tail += std::min(n, output_pending());
  if (was_full && thr_empty()) {
    r_.thr_interrupt = true;
    update_irq();
  }
}

bool Uart16550::wants_timeout() const { return r_.fifo_enabled && r_.rx_count && !r_.timeout_pending; }

uint64_t Uart16550::char_timeout_ns() const {
  // Four character times of 10 bits at the programmed rate. Divisor 0 behaves as 65536 on
  // real parts; it must never be a division by zero here.
  uint64_t divisor = r_.divisor ? r_.divisor : 65536;
  // One bit lasts 16 * divisor input-clock cycles.
  return 4 * 10 * 16 * divisor * 1'000'000'000ull / kInputClockHz;
}

void Uart16550::fire_timeout() {
  if (r_.fifo_enabled && r_.rx_count) r_.timeout_pending = true;
  update_irq();
}

}  // namespace bulkhead::device
