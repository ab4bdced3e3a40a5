#include "device-procs/common/legacy_device_server.h"

#include <sys/epoll.h>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::device {

namespace {
using vhost_user::Message;
constexpr uint32_t kMaxPollUs = 1000;
constexpr int kSpinsBetweenEventChecks = 64;

void require_fds(const Message& m, size_t count, const char* what) {
  if (m.fds.size() != count)
    throw InputError(std::string(what) + " carries " + std::to_string(m.fds.size()) + " descriptors, expected " +
                     std::to_string(count));
}
}  // namespace

LegacyDeviceServer::LegacyDeviceServer(LegacyDeviceModel& model, EventLoop& loop, UniqueFd socket)
    : model_(model), loop_(loop), connection_(std::move(socket)) {
  loop_.add(connection_.fd(), EPOLLIN | EPOLLRDHUP, [this](uint32_t) { on_socket_readable(); });
}

void LegacyDeviceServer::on_socket_readable() {
  Message message;
  if (!connection_.receive(message)) {
    loop_.stop();
    return;
  }
  handle(message);
}

void LegacyDeviceServer::handle(Message& m) {
  using vhost_user::Request;
  switch (m.request()) {
    case static_cast<uint32_t>(Request::kSetOwner):
      require_fds(m, 0, "SET_OWNER");
      return;
    case static_cast<uint32_t>(legacy::Request::kGetDeviceInfo):
      require_fds(m, 0, "GET_DEVICE_INFO");
      connection_.send(Message::make(m.request(), model_.info(), vhost_user::kFlagReply));
      return;
    case static_cast<uint32_t>(legacy::Request::kSetIrq): {
      require_fds(m, 1, "SET_IRQ");
      auto setting = m.payload_as<legacy::IrqSetting>();
      bool ok = setting.index < model_.info().num_irqs && setting.flags == 0;
      if (ok) model_.attach_irq(setting.index, std::move(m.fds[0]));
      if (m.needs_reply()) connection_.reply_u64(m, ok ? 0 : 1);
      return;
    }
    case static_cast<uint32_t>(legacy::Request::kSetAccessRing): {
      require_fds(m, 3, "SET_ACCESS_RING");
      auto setting = m.payload_as<legacy::AccessRingSetting>();
      poll_window_ = std::chrono::microseconds(std::min(setting.poll_us, kMaxPollUs));
      if (ring_) loop_.remove(ring_->kick_fd());
      ring_ = std::make_unique<legacy::AccessRingConsumer>(std::move(m.fds[0]), std::move(m.fds[1]), std::move(m.fds[2]));
      // The kick only wakes the loop; run() drains the ring after every wake-up.
      loop_.add(ring_->kick_fd(), EPOLLIN, [](uint32_t) {});
      if (m.needs_reply()) connection_.reply_u64(m, 0);
      return;
    }
    default:
      spdlog::warn("ignoring unsupported request {}", m.request());
      if (m.needs_reply()) connection_.reply_u64(m, 1);
  }
}

void LegacyDeviceServer::drain_ring() {
  size_t handled = ring_->drain([this](const legacy::AccessSlot& slot) -> uint64_t {
    if (slot.kind == static_cast<uint8_t>(legacy::AccessKind::kRead)) return model_.read(slot.region, slot.offset, slot.size);
    model_.write(slot.region, slot.offset, slot.size, slot.data);
    return 0;
  });
  if (handled) {
    last_access_ = std::chrono::steady_clock::now();
    model_.after_accesses();
  }
}

void LegacyDeviceServer::run() {
  int spins = 0;
  while (!loop_.stopped()) {
    if (ring_) {
      drain_ring();
      if (std::chrono::steady_clock::now() - last_access_ < poll_window_) {
        // Still busy: keep polling the ring, looking at other events now and then.
        if (++spins % kSpinsBetweenEventChecks == 0) loop_.run_once(0);
        __builtin_ia32_pause();
        continue;
      }
      if (!ring_->prepare_to_sleep()) continue;
    }
    loop_.run_once(-1);
    if (ring_) ring_->woke_up();
  }
  // Writes the core posted just before it went away (the guest's last bytes) still count.
  if (ring_) drain_ring();
  model_.finish();
}

}  // namespace bulkhead::device
