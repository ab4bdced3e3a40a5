#include "device-procs/serial/uart16550.h"

#include <algorithm>

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
constexpr size_t kTriggerLevels[] = {1, 4, 8, 14};
}  // namespace

Uart16550::Uart16550(IrqSink& irq, size_t output_capacity) : irq_(irq), output_capacity_(output_capacity) {}

// THR (and in FIFO mode the whole 16-byte transmit FIFO) counts as empty while the output
// buffer can take that much: a driver may write a full FIFO's worth after seeing THRE.
bool Uart16550::thr_empty() const { return output_.size() + (fifo_enabled_ ? kFifoSize : 1) <= output_capacity_; }

uint8_t Uart16550::line_status() const {
  uint8_t lsr = lsr_errors_;
  if (!rx_.empty()) lsr |= kLsrDataReady;
  if (thr_empty()) lsr |= kLsrThrEmpty | kLsrTxEmpty;
  return lsr;
}

uint8_t Uart16550::modem_status_lines() const {
  if (mcr_ & kMcrLoop) {
    uint8_t lines = 0;
    if (mcr_ & kMcrRts) lines |= kMsrCts;
    if (mcr_ & kMcrDtr) lines |= kMsrDsr;
    if (mcr_ & kMcrOut1) lines |= kMsrRi;
    if (mcr_ & kMcrOut2) lines |= kMsrDcd;
    return lines;
  }
  return kMsrCts | kMsrDsr | kMsrDcd;  // a connected peer
}

void Uart16550::update_modem_deltas(uint8_t old_lines) {
  uint8_t now = modem_status_lines();
  uint8_t changed = old_lines ^ now;
  if (changed & kMsrCts) msr_deltas_ |= kMsrDcts;
  if (changed & kMsrDsr) msr_deltas_ |= kMsrDdsr;
  if ((old_lines & kMsrRi) && !(now & kMsrRi)) msr_deltas_ |= kMsrTeri;
  if (changed & kMsrDcd) msr_deltas_ |= kMsrDdcd;
}

uint8_t Uart16550::interrupt_id() const {
  if ((ier_ & kIerLineStatus) && lsr_errors_) return kIirLineStatus;
  if (ier_ & kIerRx) {
    if (fifo_enabled_ ? rx_.size() >= rx_trigger_ : !rx_.empty()) return kIirRx;
    if (timeout_pending_) return kIirTimeout;
  }
  if ((ier_ & kIerThr) && thr_interrupt_) return kIirThr;
  if ((ier_ & kIerModemStatus) && msr_deltas_) return kIirModemStatus;
  return kIirNone;
}

void Uart16550::update_irq() {
  // On a PC the INTR pin reaches the PIC only through the OUT2-gated buffer, and loopback
  // disconnects the modem-control outputs from their pins.
  bool level = interrupt_id() != kIirNone && (mcr_ & kMcrOut2) && !(mcr_ & kMcrLoop);
  irq_level_ = level;
  irq_.set_level(level);
}

void Uart16550::push_rx(uint8_t byte) {
  size_t capacity = fifo_enabled_ ? kFifoSize : 1;
  if (rx_.size() >= capacity) {
    lsr_errors_ |= kLsrOverrun;
    return;
  }
  rx_.push_back(byte);
  ++rx_activity_;
  timeout_pending_ = false;
}

void Uart16550::transmit(uint8_t byte) {
  if (mcr_ & kMcrLoop) {
    push_rx(byte);
  } else if (output_.size() < output_capacity_) {
    output_.push_back(byte);
  } else {
    ++dropped_output_;
  }
}

uint8_t Uart16550::read(uint8_t offset) {
  uint8_t value = 0;
  switch (offset & 7) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) {
        value = static_cast<uint8_t>(divisor_);
      } else if (!rx_.empty()) {
        value = rx_.front();
        rx_.pop_front();
        ++rx_activity_;
        timeout_pending_ = false;
      }
      break;
    case kIer:
      value = (lcr_ & kLcrDlab) ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
      break;
    case kIirFcr: {
      uint8_t id = interrupt_id();
      value = id | (fifo_enabled_ ? kIirFifoEnabled : 0);
      if (id == kIirThr) thr_interrupt_ = false;  // reading IIR acknowledges THRE
      break;
    }
    case kLcr:
      value = lcr_;
      break;
    case kMcr:
      value = mcr_;
      break;
    case kLsr:
      value = line_status();
      lsr_errors_ = 0;
      break;
    case kMsr:
      value = modem_status_lines() | msr_deltas_;
      msr_deltas_ = 0;
      break;
    case kScr:
      value = scr_;
      break;
  }
  update_irq();
  return value;
}

void Uart16550::write(uint8_t offset, uint8_t value) {
  switch (offset & 7) {
    case kRbrThr:
      if (lcr_ & kLcrDlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0xff00) | value);
        break;
      }
      // Writing THR clears the THRE interrupt; the instant transmission then empties THR
      // again. The IRQ line is updated in between so an edge-triggered PIC sees a new edge.
      thr_interrupt_ = false;
      update_irq();
      transmit(value);
      if (thr_empty()) thr_interrupt_ = true;
      break;
    case kIer:
      if (lcr_ & kLcrDlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0x00ff) | value << 8);
        break;
      }
      // Enabling the THRE interrupt while THR is empty raises it at once.
      if ((value & kIerThr) && !(ier_ & kIerThr) && thr_empty()) thr_interrupt_ = true;
      ier_ = value & 0x0f;
      break;
    case kIirFcr: {
      bool enable = value & kFcrEnable;
      if (enable != fifo_enabled_ || (value & kFcrClearRx)) {
        rx_.clear();
        timeout_pending_ = false;
      }
      fifo_enabled_ = enable;
      rx_trigger_ = kTriggerLevels[value >> 6];
      break;
    }
    case kLcr:
      lcr_ = value;
      break;
    case kMcr: {
      uint8_t old_lines = modem_status_lines();
      mcr_ = value & kMcrMask;
      update_modem_deltas(old_lines);
      break;
    }
    case kLsr:
    case kMsr:
      break;  // read-only (factory test registers on some parts)
    case kScr:
      scr_ = value;
      break;
  }
  update_irq();
}

size_t Uart16550::rx_space() const {
  if (mcr_ & kMcrLoop) return 0;
  size_t capacity = fifo_enabled_ ? kFifoSize : 1;
  return rx_.size() >= capacity ? 0 : capacity - rx_.size();
}

void Uart16550::receive(std::span<const uint8_t> bytes) {
  for (uint8_t b : bytes.first(std::min(bytes.size(), rx_space()))) push_rx(b);
  update_irq();
}

size_t Uart16550::peek_output(uint8_t* out, size_t max) const {
  size_t n = std::min(max, output_.size());
  std::copy_n(output_.begin(), n, out);
  return n;
}

void Uart16550::consume_output(size_t n) {
  bool was_full = !thr_empty();
  output_.erase(output_.begin(), output_.begin() + static_cast<std::ptrdiff_t>(std::min(n, output_.size())));
  if (was_full && thr_empty()) {
    thr_interrupt_ = true;
    update_irq();
  }
}

bool Uart16550::wants_timeout() const { return fifo_enabled_ && !rx_.empty() && !timeout_pending_; }

uint64_t Uart16550::char_timeout_ns() const {
  // Four character times of 10 bits at the programmed rate. Divisor 0 behaves as 65536 on
  // real parts; it must never be a division by zero here.
  uint64_t divisor = divisor_ ? divisor_ : 65536;
  // One bit lasts 16 * divisor input-clock cycles.
  return 4 * 10 * 16 * divisor * 1'000'000'000ull / kInputClockHz;
}

void Uart16550::fire_timeout() {
  if (fifo_enabled_ && !rx_.empty()) timeout_pending_ = true;
  update_irq();
}

}  // namespace bulkhead::device
