// The serial device process's model: one 16550A (register window 0, IRQ line 0) wired to
// host byte streams handed in by the launcher: input, output, or a listening unix socket
// whose one client at a time is both.
#pragma once

#include <cstdint>

#include "common/unique_fd.h"
#include "device-procs/common/event_loop.h"
#include "device-procs/common/irq_line.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/serial/uart16550.h"

namespace bulkhead::device {

class SerialDevice : public LegacyDeviceModel {
 public:
  // Any descriptor may be invalid. The device never opens anything itself.
  SerialDevice(EventLoop& loop, UniqueFd input, UniqueFd output, UniqueFd listener);

  legacy::DeviceInfo info() const override;
  uint64_t read(uint8_t region, uint64_t offset, uint8_t size) override;
  void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) override;
  void attach_irq(uint32_t index, UniqueFd irqfd) override;
  void after_accesses() override;

  const Uart16550& uart() const { return uart_; }

 private:
  void set_streams(UniqueFd input, UniqueFd output);
  void drop_client();
  void on_input(uint32_t events);
  void on_output_ready();
  void flush_output(bool writable);
  void set_output_waiting(bool waiting);
  void update_interest();
  void update_timer();
  void accept_client();

  EventLoop& loop_;
  IrqLine irq_;
  Uart16550 uart_;
  UniqueFd input_;
  UniqueFd output_;
  UniqueFd listener_;
  UniqueFd timer_;
  bool input_watched_ = false;   // registered with the loop
  bool input_paused_ = false;    // EPOLLIN interest off: FIFO full or stream at EOF
  bool input_eof_ = false;
  bool output_watched_ = false;  // false for regular files: always writable
  bool output_waiting_ = false;  // EPOLLOUT interest on
  bool client_ = false;          // streams belong to an accepted client
  uint64_t timer_for_activity_ = ~0ull;
};

}  // namespace bulkhead::device
