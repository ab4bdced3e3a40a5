#include "device-procs/serial/serial_device.h"

#include <poll.h>
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
constexpr uint64_t kPtyProbeNs = 1'000'000'000;
constexpr int kFinishTimeoutMs = 5000;

UniqueFd make_timer() {
  // A monotonic timerfd owned by the returned UniqueFd.
  UniqueFd fd(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!fd) throw_errno("timerfd_create");
  return fd;
}

void consume_timer(int fd) {
  uint64_t expirations;
  // Reading resets the timerfd; the count itself does not matter.
  [[maybe_unused]] ssize_t n = ::read(fd, &expirations, sizeof expirations);
}
}  // namespace

SerialDevice::SerialDevice(EventLoop& loop, SerialStreams streams)
    : loop_(loop),
      uart_(irq_),
      input_(std::move(streams.input)),
      output_(std::move(streams.output)),
      listener_(std::move(streams.listener)),
      pty_(streams.pty),
      output_positional_(streams.output_positional),
      char_timer_(make_timer()),
      pty_probe_timer_(make_timer()) {
  loop_.add(char_timer_.get(), EPOLLIN, [this](uint32_t) {
    consume_timer(char_timer_.get());
    uart_.fire_timeout();
    save_state();
  });
  loop_.add(pty_probe_timer_.get(), EPOLLIN, [this](uint32_t) {
    consume_timer(pty_probe_timer_.get());
    probe_pty();
  });
}

void SerialDevice::begin_serving() {
  if (listener_) loop_.add(listener_.get(), EPOLLIN, [this](uint32_t) { accept_client(); });
  watch_streams();
  // A resumed state may hold output the dead process had not written, and a FIFO to time out.
  after_accesses();
  save_state();
}

legacy::DeviceInfo SerialDevice::info() const {
  legacy::DeviceInfo info{};
  std::strncpy(info.kind, kKind, sizeof info.kind);
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

void SerialDevice::attach_irq(uint32_t, UniqueFd trigger, UniqueFd resample) {
  irq_.attach(loop_, std::move(trigger), std::move(resample));
}

void SerialDevice::after_accesses() {
  flush_output(false);
  update_input_interest();
  update_timer();
}

LegacyDeviceModel::StateLayout SerialDevice::state_layout() const {
  return {sizeof(Snapshot), Uart16550::kDefaultOutputCapacity};
}

void SerialDevice::attach_state(StatePage& page) {
  state_ = &page;
  uart_.use_output_buffer(page.bulk());
  std::span<const uint8_t> committed = page.committed();
  if (committed.empty()) return;
  Snapshot snapshot;
  // committed is sizeof(Snapshot) bytes (state_layout()); restore() checks what they say.
  std::memcpy(&snapshot, committed.data(), sizeof snapshot);
  uart_.restore(snapshot.uart);
  output_offset_ = snapshot.output_offset;
  spdlog::info("resuming the serial state of a previous process: {} bytes of output pending", uart_.output_pending());
}

void SerialDevice::save_state() {
  if (!state_) return;
  Snapshot snapshot{uart_.registers(), output_offset_};
  // A trivially copyable struct, committed as its bytes.
  state_->commit({reinterpret_cast<const uint8_t*>(&snapshot), sizeof snapshot});
}

void SerialDevice::finish() {
  if (!output_ || peer_ != Peer::kPresent) return;
  while (uart_.output_pending()) {
    pollfd p{output_.get(), POLLOUT, 0};
    // Waits for room on our own output descriptor; a regular file is always ready.
    if (output_watched_ && ::poll(&p, 1, kFinishTimeoutMs) <= 0) return;
    size_t before = uart_.output_pending();
    flush_output(true);
    if (!output_ || uart_.output_pending() == before) return;
  }
}

void SerialDevice::watch_streams() {
  input_paused_ = false;
  output_waiting_ = false;
  input_watched_ = input_ && loop_.add(input_.get(), EPOLLIN, [this](uint32_t ev) {
    on_input(ev);
    save_state();
  });
  output_watched_ = output_ && loop_.add(output_.get(), 0, [this](uint32_t events) {
    if (events & (EPOLLHUP | EPOLLERR) && pty_) return peer_left();
    flush_output(true);
    save_state();
  });
}

void SerialDevice::unwatch_streams() {
  // epoll reports hang-ups even with an empty interest set, so streams nobody serves are
  // removed altogether rather than muted.
  if (input_watched_) loop_.remove(input_.get());
  if (output_watched_) loop_.remove(output_.get());
  input_watched_ = output_watched_ = output_waiting_ = false;
}

void SerialDevice::peer_left() {
  unwatch_streams();
  if (client_) {
    input_.reset();
    output_.reset();
    client_ = false;
    peer_ = Peer::kPresent;  // output is discarded until the next client connects
    return;
  }
  if (pty_) {
    peer_ = Peer::kAway;
    arm_timer(pty_probe_timer_.get(), kPtyProbeNs, true);
    return;
  }
  peer_ = Peer::kGone;
}

void SerialDevice::input_ended() {
  // A socket client or a pty reader that leaves takes both directions with it; the end of
  // a plain input stream (stdin at EOF) leaves the output alone.
  if (client_ || pty_) return peer_left();
  if (input_watched_) loop_.remove(input_.get());
  input_watched_ = false;
  input_.reset();
}

void SerialDevice::probe_pty() {
  if (peer_ != Peer::kAway) return;
  pollfd p{input_.get(), POLLIN, 0};
  // A zero-timeout poll of our pty master: POLLHUP means the slave is still closed.
  if (::poll(&p, 1, 0) < 0 || (p.revents & POLLHUP)) return;
  arm_timer(pty_probe_timer_.get(), 0, false);
  peer_ = Peer::kPresent;
  watch_streams();
}

void SerialDevice::accept_client() {
  // accept4 on the listening socket we were handed; the new connection is ours alone.
  UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!client || client_) return;  // one client at a time: later ones are closed at once
  // A second descriptor for the same socket, so input and output register separately.
  UniqueFd output(::dup(client.get()));
  if (!output) return;
  input_ = std::move(client);
  output_ = std::move(output);
  client_ = true;
  peer_ = Peer::kPresent;
  watch_streams();
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
      return input_ended();
    }
  } else if (events & (EPOLLHUP | EPOLLERR)) {
    return input_ended();
  }
  update_input_interest();
  update_timer();
}

void SerialDevice::flush_output(bool writable) {
  if (!output_ || peer_ != Peer::kPresent) {
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
    // write() (or, to a log file of our own, pwrite() at the committed position) of bytes
    // from a local buffer to the backend.
    ssize_t written = output_positional_ ? ::pwrite(output_.get(), chunk, n, static_cast<off_t>(output_offset_))
                                         : ::write(output_.get(), chunk, n);
    if (written < 0 && (errno == EAGAIN || errno == EINTR)) break;
    if (written < 0) {
      if (!client_ && !pty_) spdlog::warn("serial output failed ({}); discarding further output", std::strerror(errno));
      peer_left();
      uart_.consume_output(uart_.output_pending());
      return;
    }
    uart_.consume_output(static_cast<size_t>(written));
    output_offset_ += static_cast<uint64_t>(written);
    if (output_watched_) break;
  }
  if (output_watched_) set_output_waiting(uart_.output_pending() > 0);
}

void SerialDevice::set_output_waiting(bool waiting) {
  if (waiting == output_waiting_) return;
  output_waiting_ = waiting;
  loop_.modify(output_.get(), waiting ? uint32_t{EPOLLOUT} : 0u);
}

void SerialDevice::update_input_interest() {
  if (!input_watched_) return;
  bool want = uart_.rx_space() > 0;
  if (want == !input_paused_) return;
  input_paused_ = !want;
  loop_.modify(input_.get(), want ? uint32_t{EPOLLIN} : 0u);
}

void SerialDevice::update_timer() {
  if (!uart_.wants_timeout() || uart_.rx_activity() == timer_for_activity_) return;
  timer_for_activity_ = uart_.rx_activity();
  arm_timer(char_timer_.get(), uart_.char_timeout_ns(), false);
}

void SerialDevice::arm_timer(int fd, uint64_t ns, bool periodic) {
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (periodic) spec.it_interval = spec.it_value;
  // Arms (or with ns == 0 disarms) one of our own timerfds, relative to now.
  ::timerfd_settime(fd, 0, &spec, nullptr);
}

}  // namespace bulkhead::device
