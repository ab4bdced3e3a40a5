// The serial device process's model: one 16550A (register window 0, IRQ line 0) wired to
// host byte streams handed in by the launcher: input and output descriptors, a pty master,
// or a listening unix socket whose one client at a time is both.
//
// Its state (the UART's registers, its FIFO and output buffer, and how far a log file was
// written) lives in the core's state page, so a process started after a crash goes on where
// the dead one committed: output buffered but not yet written is written, a log file is
// rewritten from the committed position (so nothing in it repeats), and on a stream at most
// the last write before the crash is written again. A unix-socket client's connection ends
// with the process; the client connects again. Input the dead process had read but not yet
// committed (a SIGKILL during read() takes effect as it returns) is lost: at most 16 bytes.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/unique_fd.h"
#include "common/event_loop.h"
#include "device-procs/common/irq_line.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/serial/uart16550.h"

namespace bulkhead::device {

struct SerialStreams {
  UniqueFd input;     // may be invalid
  UniqueFd output;    // may be invalid: output is discarded
  UniqueFd listener;  // may be invalid
  bool pty = false;   // input/output are a pty master (see control.proto)
  bool output_positional = false;  // output is a log file of our own (see control.proto)
};

class SerialDevice : public LegacyDeviceModel {
 public:
  static constexpr const char* kKind = "serial";

  SerialDevice(EventLoop& loop, SerialStreams streams);

  legacy::DeviceInfo info() const override;
  uint64_t read(uint8_t region, uint64_t offset, uint8_t size) override;
  void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) override;
  void attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) override;
  // Starts reading input and accepting console clients.
  void begin_serving() override;
  void after_accesses() override;
  StateLayout state_layout() const override;
  void attach_state(StatePage& page) override;
  void save_state() override;
  // Writes out what the guest sent before the VM ended (bounded wait).
  void finish() override;

  const Uart16550& uart() const { return uart_; }

 private:
  enum class Peer { kPresent, kGone, kAway };  // kAway: a pty nobody has open, checked again later

  void watch_streams();
  void unwatch_streams();
  void peer_left();
  void input_ended();
  void accept_client();
  void probe_pty();
  void on_input(uint32_t events);
  void flush_output(bool writable);
  void set_output_waiting(bool waiting);
  void update_input_interest();
  void update_timer();
  void arm_timer(int fd, uint64_t ns, bool periodic);

  // What the state page's snapshot holds.
  struct Snapshot {
    Uart16550::Registers uart;
    uint64_t output_offset;
  };
  static_assert(std::is_trivially_copyable_v<Snapshot>);

  EventLoop& loop_;
  IrqLine irq_;
  Uart16550 uart_;
  UniqueFd input_, output_, listener_;
  bool pty_;
  bool output_positional_;
  uint64_t output_offset_ = 0;    // output_positional_: where the next byte goes in the file
  StatePage* state_ = nullptr;
  Peer peer_ = Peer::kPresent;
  bool client_ = false;           // streams belong to an accepted unix-socket client
  bool input_watched_ = false;
  bool input_paused_ = false;     // FIFO full: EPOLLIN interest off
  bool output_watched_ = false;   // false for regular files, which are always writable
  bool output_waiting_ = false;   // EPOLLOUT interest on
  UniqueFd char_timer_;           // the receive FIFO's character timeout
  UniqueFd pty_probe_timer_;
  uint64_t timer_for_activity_ = ~0ull;
};

}  // namespace bulkhead::device
