#include "device-procs/serial/serial_device.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::device {

namespace {
// At most this much per write(): a pipe or tty that reported EPOLLOUT takes it without blocking.
constexpr size_t kWriteChunk = 512;
}  // namespace

SerialDevice::SerialDevice(EventLoop& loop, UniqueFd input, UniqueFd output, UniqueFd listener)
    : loop_(loop), uart_(irq_), listener_(std::move(listener)) {
  // A monotonic one-shot timer for the receive FIFO's character timeout.
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer_) throw_errno("timerfd_create");
  loop_.add(timer_.get(), EPOLLIN, [this](uint32_t) {
    uint64_t expirations;
    // Reading resets the timerfd; the count itself does not matter.
    [[maybe_unused]] ssize_t n = ::read(timer_.get(), &expirations, sizeof expirations);
    uart_.fire_timeout();
  });
  if (listener_) loop_.add(listener_.get(), EPOLLIN, [this](uint32_t) { accept_client(); });
  set_streams(std::move(input), std::move(output));
}

legacy::DeviceInfo SerialDevice::info() const {
  legacy::DeviceInfo info{};
  info.kind = static_cast<uint32_t>(legacy::DeviceKind::kSerial16550);
  info.num_regions = 1;
  info.num_irqs = 1;
  info.region_size[0] = Uart16550::kRegisterCount;
  return info;
}

uint64_t SerialDevice::read(uint8_t region, uint64_t offset, uint8_t size) {
  if (region != 0 || size != 1 || offset >= Uart16550::kRegisterCount) return ~0ull;
  return uart_.read(static_cast<uint8_t>(offset));
}

void SerialDevice::write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) {
  if (region != 0 || size != 1 || offset >= Uart16550::kRegisterCount) return;
  uart_.write(static_cast<uint8_t>(offset), static_cast<uint8_t>(value));
}

void SerialDevice::attach_irq(uint32_t, UniqueFd irqfd) { irq_.attach(std::move(irqfd)); }

void SerialDevice::after_accesses() {
  flush_output(false);
  update_interest();
  update_timer();
}

void SerialDevice::set_streams(UniqueFd input, UniqueFd output) {
  input_ = std::move(input);
  output_ = std::move(output);
  input_eof_ = false;
  input_paused_ = false;
  input_watched_ = input_ && loop_.add(input_.get(), EPOLLIN, [this](uint32_t ev) { on_input(ev); });
  output_waiting_ = false;
  output_watched_ = output_ && loop_.add(output_.get(), 0, [this](uint32_t) { on_output_ready(); });
}

void SerialDevice::drop_client() {
  if (input_watched_) loop_.remove(input_.get());
  if (output_watched_) loop_.remove(output_.get());
  input_.reset();
  output_.reset();
  input_watched_ = output_watched_ = client_ = false;
}

void SerialDevice::accept_client() {
  // accept4 on the listening socket we were handed; the new connection is ours alone.
  UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!client) return;
  if (client_) return;  // one client at a time: later ones are closed at once
  // A second descriptor for the same socket, so input and output register separately.
  UniqueFd output(::dup(client.get()));
  if (!output) return;
  set_streams(std::move(client), std::move(output));
  client_ = true;
}

void SerialDevice::on_input(uint32_t events) {
  uint8_t buffer[Uart16550::kFifoSize];
  size_t want = std::min(sizeof buffer, uart_.rx_space());
  if (want > 0) {
    // Reading at most `want` bytes into a local buffer; EPOLLIN said data or EOF is there.
    ssize_t n = ::read(input_.get(), buffer, want);
    if (n > 0) {
      uart_.receive({buffer, static_cast<size_t>(n)});
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
      if (client_) return drop_client();
      input_eof_ = true;
    }
  } else if (events & (EPOLLHUP | EPOLLERR)) {
    if (client_) return drop_client();
    input_eof_ = true;
  }
  update_interest();
  update_timer();
}

void SerialDevice::on_output_ready() {
  flush_output(true);
  update_interest();
}

void SerialDevice::flush_output(bool writable) {
  if (!output_) {
    // Nobody is listening: discard, so the guest never stalls on a console no one reads.
    uart_.consume_output(uart_.output_pending());
    return;
  }
  // A pollable stream may be a shared blocking descriptor (the launcher's stdout): write
  // only after EPOLLOUT, one chunk at a time. Regular files are always writable.
  if (output_watched_ && !writable) {
    set_output_waiting(uart_.output_pending() > 0);
    return;
  }
  while (uart_.output_pending()) {
    uint8_t chunk[kWriteChunk];
    size_t n = uart_.peek_output(chunk, sizeof chunk);
    // write() of bytes from a local buffer to the backend stream.
    ssize_t written = ::write(output_.get(), chunk, n);
    if (written < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (written < 0) {
      if (client_) return drop_client();
      spdlog::warn("serial output failed ({}); discarding further output", std::strerror(errno));
      if (output_watched_) loop_.remove(output_.get());
      output_.reset();
      output_watched_ = false;
      uart_.consume_output(uart_.output_pending());
      return;
    }
    uart_.consume_output(static_cast<size_t>(written));
    if (output_watched_) break;
  }
  if (output_watched_) set_output_waiting(uart_.output_pending() > 0);
}

void SerialDevice::set_output_waiting(bool waiting) {
  if (waiting == output_waiting_) return;
  output_waiting_ = waiting;
  loop_.modify(output_.get(), waiting ? uint32_t{EPOLLOUT} : 0u);
}

void SerialDevice::update_interest() {
  if (!input_watched_ || input_eof_) {
    if (input_watched_ && input_eof_) {
      loop_.remove(input_.get());
      input_watched_ = false;
    }
    return;
  }
  bool want = uart_.rx_space() > 0;
  if (want == !input_paused_) return;
  input_paused_ = !want;
  loop_.modify(input_.get(), want ? uint32_t{EPOLLIN} : 0u);
}

void SerialDevice::update_timer() {
  if (!uart_.wants_timeout() || uart_.rx_activity() == timer_for_activity_) return;
  timer_for_activity_ = uart_.rx_activity();
  itimerspec spec{};
  uint64_t ns = uart_.char_timeout_ns();
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  // Arms our own timerfd with a relative one-shot expiry.
  ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
}

}  // namespace bulkhead::device
