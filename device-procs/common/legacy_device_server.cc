#include "device-procs/common/legacy_device_server.h"

#include <sys/epoll.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::device {

namespace {
using vhost_user::Message;
constexpr uint32_t kMaxPollUs = 1000;

void require_fds(const Message& m, size_t count, const char* what) {
  if (m.fds.size() != count)
    throw InputError(std::string(what) + " carries " + std::to_string(m.fds.size()) + " descriptors, expected " +
                     std::to_string(count));
}

uint64_t load_item(const uint8_t* p, uint8_t size) {
  uint64_t v = 0;
  std::memcpy(&v, p, size);
  return v;
}
}  // namespace

void LegacyDeviceModel::read_string(uint8_t region, uint64_t offset, uint8_t size, std::span<uint8_t> items) {
  for (size_t at = 0; at + size <= items.size(); at += size) {
    uint64_t v = read(region, offset, size);
    std::memcpy(items.data() + at, &v, size);
  }
}

void LegacyDeviceModel::write_string(uint8_t region, uint64_t offset, uint8_t size, std::span<const uint8_t> items) {
  for (size_t at = 0; at + size <= items.size(); at += size) write(region, offset, size, load_item(items.data() + at, size));
}

LegacyDeviceServer::LegacyDeviceServer(LegacyDeviceModel& model, EventLoop& loop, UniqueFd socket)
    : model_(model), info_(model.info()), loop_(loop), connection_(std::move(socket)) {
  LegacyDeviceModel::StateLayout layout = model.state_layout();
  info_.state_size = layout.snapshot ? static_cast<uint32_t>(StatePage::bytes(layout.snapshot, layout.bulk)) : 0;
  loop_.add(connection_.fd(), EPOLLIN | EPOLLRDHUP, [this](uint32_t) { on_socket_readable(); });
}

void LegacyDeviceServer::on_socket_readable() {
  Message message;
  if (!connection_.receive(message)) {
    connected_ = false;
    return;
  }
  handle(message);
}

void LegacyDeviceServer::set_memory(Message& m) {
  if (!(info_.flags & legacy::kDeviceNeedsGuestMemory)) throw InputError("SET_MEM_TABLE for a device without DMA");
  if (m.payload.size() < 8) throw InputError("SET_MEM_TABLE payload too short");
  vhost_user::MemoryTable table{};
  std::memcpy(&table, m.payload.data(), std::min(m.payload.size(), sizeof table));
  if (table.nregions == 0 || table.nregions > vhost_user::kMaxMemoryRegions ||
      m.payload.size() != 8 + table.nregions * sizeof(vhost_user::MemoryRegion))
    throw InputError("SET_MEM_TABLE with a malformed region list");
  require_fds(m, table.nregions, "SET_MEM_TABLE");
  memory_.clear();
  for (uint32_t i = 0; i < table.nregions; ++i) memory_.add(table.regions[i], std::move(m.fds[i]));
  model_.attach_memory(memory_);
  if (m.needs_reply()) connection_.reply_u64(m, 0);
}

void LegacyDeviceServer::handle(Message& m) {
  using vhost_user::Request;
  switch (m.request()) {
    case static_cast<uint32_t>(Request::kSetOwner):
      require_fds(m, 0, "SET_OWNER");
      return;
    case static_cast<uint32_t>(Request::kSetMemTable):
      return set_memory(m);
    case static_cast<uint32_t>(legacy::Request::kGetDeviceInfo):
      require_fds(m, 0, "GET_DEVICE_INFO");
      connection_.send(Message::make(m.request(), info_, vhost_user::kFlagReply));
      return;
    case static_cast<uint32_t>(legacy::Request::kSetIrq): {
      auto setting = m.payload_as<legacy::IrqSetting>();
      bool level = setting.flags == legacy::kIrqLevel;
      require_fds(m, level ? 2 : 1, "SET_IRQ");
      bool ok = setting.index < info_.num_irqs && (setting.flags == 0 || level);
      if (ok) model_.attach_irq(setting.index, std::move(m.fds[0]), level ? std::move(m.fds[1]) : UniqueFd());
      if (m.needs_reply()) connection_.reply_u64(m, ok ? 0 : 1);
      return;
    }
    case static_cast<uint32_t>(legacy::Request::kSetStatePage): {
      require_fds(m, 1, "SET_STATE_PAGE");
      if (!info_.state_size || state_ || ring_) throw InputError("SET_STATE_PAGE for a device without state, twice or late");
      LegacyDeviceModel::StateLayout layout = model_.state_layout();
      state_ = std::make_unique<StatePage>(std::move(m.fds[0]), layout.snapshot, layout.bulk);
      model_.attach_state(*state_);
      if (m.needs_reply()) connection_.reply_u64(m, 0);
      return;
    }
    case static_cast<uint32_t>(legacy::Request::kSetAccessRing): {
      require_fds(m, 3, "SET_ACCESS_RING");
      auto setting = m.payload_as<legacy::AccessRingSetting>();
      poll_window_ = std::chrono::microseconds(std::min(setting.poll_us, kMaxPollUs));
      if (ring_) loop_.remove(ring_->kick_fd());
      // A process resuming a committed state goes on from the accesses that state includes.
      std::optional<uint32_t> resume_at;
      if (state_ && !state_->committed().empty()) resume_at = state_->applied();
      ring_ = std::make_unique<legacy::AccessRingConsumer>(std::move(m.fds[0]), std::move(m.fds[1]), std::move(m.fds[2]),
                                                           resume_at);
      // The kick only wakes the loop; the serving loop drains the ring after every wake-up.
      loop_.add(ring_->kick_fd(), EPOLLIN, [](uint32_t) {});
      if (m.needs_reply()) connection_.reply_u64(m, 0);
      if (!serving_) model_.begin_serving();
      serving_ = true;
      return;
    }
    default:
      spdlog::warn("ignoring unsupported request {}", m.request());
      if (m.needs_reply()) connection_.reply_u64(m, 1);
  }
}

size_t LegacyDeviceServer::drain_ring() {
  using legacy::AccessKind;
  auto handle = [this](const legacy::AccessSlot& slot, std::span<uint8_t> items) -> uint64_t {
    switch (static_cast<AccessKind>(slot.kind)) {
      case AccessKind::kRead:
        return model_.read(slot.region, slot.offset, slot.size);
      case AccessKind::kWrite:
        model_.write(slot.region, slot.offset, slot.size, slot.data);
        return 0;
      case AccessKind::kReadString:
        std::memset(items.data(), 0xff, items.size());
        if (slot.size) model_.read_string(slot.region, slot.offset, slot.size, items);
        return 0;
      case AccessKind::kWriteString:
        if (slot.size) model_.write_string(slot.region, slot.offset, slot.size, items);
        return 0;
    }
    return ~0ull;  // an unknown kind from a confused core: ignored
  };
  // What the accesses did is committed before the core learns they are done; what the
  // model does after them (output written, timers) is committed in its turn.
  auto commit = [this](uint32_t handled_through) {
    if (!state_) return;
    state_->set_applied(handled_through);
    model_.save_state();
  };
  size_t handled = ring_->drain(handle, commit);
  if (handled) {
    model_.after_accesses();
    model_.save_state();
  }
  return handled;
}

bool LegacyDeviceServer::poll() { return ring_ && drain_ring() > 0; }

bool LegacyDeviceServer::prepare_to_sleep() { return !ring_ || ring_->prepare_to_sleep(); }

void LegacyDeviceServer::woke_up() {
  if (ring_) ring_->woke_up();
}

void LegacyDeviceServer::run() {
  serve_adaptively(loop_, *this, poll_window_, [this] { return connected_; });
  // Writes the core posted just before it went away (the guest's last bytes) still count.
  if (ring_) drain_ring();
  model_.finish();
}

}  // namespace bulkhead::device
