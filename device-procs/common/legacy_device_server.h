// The device side of the legacy device protocol: answers the core's vhost-user-style
// messages and serves register accesses from the shared access ring, polling the ring for a
// short while after each access so that back-to-back accesses need no wake-up.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include "common/event_loop.h"
#include "ipc/legacy_device/access_ring.h"
#include "ipc/legacy_device/protocol.h"
#include "vhost-user/connection.h"

namespace bulkhead::device {

// What a legacy device process implements.
class LegacyDeviceModel {
 public:
  virtual ~LegacyDeviceModel() = default;
  virtual legacy::DeviceInfo info() const = 0;
  virtual uint64_t read(uint8_t region, uint64_t offset, uint8_t size) = 0;
  virtual void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) = 0;
  virtual void attach_irq(uint32_t index, UniqueFd irqfd) = 0;
  // After a batch of accesses: a chance to flush output or re-arm timers once per batch.
  virtual void after_accesses() {}
  // The core hung up and every access it posted has been handled: finish pending work.
  virtual void finish() {}
};

class LegacyDeviceServer {
 public:
  LegacyDeviceServer(LegacyDeviceModel& model, EventLoop& loop, UniqueFd socket);

  // Serves until the core hangs up or the loop is stopped. Throws on protocol violations.
  void run();

 private:
  void on_socket_readable();
  void handle(vhost_user::Message& message);
  void drain_ring();

  LegacyDeviceModel& model_;
  EventLoop& loop_;
  vhost_user::Connection connection_;
  std::unique_ptr<legacy::AccessRingConsumer> ring_;
  std::chrono::microseconds poll_window_{0};
  std::chrono::steady_clock::time_point last_access_{};
};

}  // namespace bulkhead::device
