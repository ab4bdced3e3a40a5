// The device side of the legacy device protocol: answers the core's vhost-user-style
// messages (device info, interrupt lines, guest memory for DMA, the access ring) and serves
// register accesses from the shared access ring with adaptive polling.
#pragma once

#include <chrono>
#include <memory>
#include <span>

#include "common/event_loop.h"
#include "device-procs/common/adaptive_poll.h"
#include "device-procs/common/state_page.h"
#include "ipc/legacy_device/access_ring.h"
#include "ipc/legacy_device/protocol.h"
#include "vhost-user/connection.h"
#include "vhost-user/memory_map.h"

namespace bulkhead::device {

// What a legacy device process implements.
class LegacyDeviceModel {
 public:
  virtual ~LegacyDeviceModel() = default;
  virtual legacy::DeviceInfo info() const = 0;
  virtual uint64_t read(uint8_t region, uint64_t offset, uint8_t size) = 0;
  virtual void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) = 0;
  // String port I/O: `items` holds count * size bytes. By default, one access per item.
  virtual void read_string(uint8_t region, uint64_t offset, uint8_t size, std::span<uint8_t> items);
  virtual void write_string(uint8_t region, uint64_t offset, uint8_t size, std::span<const uint8_t> items);
  // Interrupt line `index`: `resample` is set for level-triggered lines (IrqLine::attach).
  virtual void attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) = 0;
  // Guest memory for DMA (devices whose info has kDeviceNeedsGuestMemory). Every address
  // the guest gives must be translated and checked through it.
  virtual void attach_memory(const vhost_user::MemoryMap& /*memory*/) {}
  // The core has set the device up (its access ring came last): serve the host side from now
  // on. Not before: a restarted device reads host input only into its resumed state.
  virtual void begin_serving() {}
  // After a batch of accesses: a chance to flush output or re-arm timers once per batch.
  virtual void after_accesses() {}
  // Crash recovery: a model that keeps its state in a StatePage (a snapshot and bulk bytes,
  // StatePage's layout) says how large they are; {0, 0}: its state dies with its process.
  // The server reports the page's size to the core (DeviceInfo::state_size).
  struct StateLayout {
    size_t snapshot = 0, bulk = 0;
  };
  virtual StateLayout state_layout() const { return {}; }
  // `page` is where the model keeps its state; it resumes from what the page holds (a
  // committed snapshot). Called once, before any access.
  virtual void attach_state(StatePage& /*page*/) {}
  // Commits the model's state to its page: the server calls it before it tells the core that
  // the accesses handled so far are done, the model itself after every host-side event.
  virtual void save_state() {}
  // The core hung up and every access it posted has been handled: finish pending work.
  virtual void finish() {}
};

class LegacyDeviceServer : private PolledWork {
 public:
  LegacyDeviceServer(LegacyDeviceModel& model, EventLoop& loop, UniqueFd socket);

  // Serves until the core hangs up or the loop is stopped. Throws on protocol violations.
  void run();

 private:
  void on_socket_readable();
  void handle(vhost_user::Message& message);
  void set_memory(vhost_user::Message& message);
  size_t drain_ring();
  // PolledWork: the access ring.
  bool poll() override;
  bool prepare_to_sleep() override;
  void woke_up() override;

  LegacyDeviceModel& model_;
  legacy::DeviceInfo info_;
  EventLoop& loop_;
  vhost_user::Connection connection_;
  bool connected_ = true;
  bool serving_ = false;  // begin_serving() was called
  vhost_user::MemoryMap memory_;
  std::unique_ptr<StatePage> state_;
  std::unique_ptr<legacy::AccessRingConsumer> ring_;
  std::chrono::microseconds poll_window_{0};
};

}  // namespace bulkhead::device
