#include "vmm-core/virtio/vhost_user_pci_backend.h"

#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::core {

namespace feature = vhost_user::feature;

namespace {

// Transport features the core's virtio-pci supports; everything else device-specific passes.
constexpr uint64_t kTransportMask = feature::kAccessPlatform | feature::kRingPacked | feature::kProtocolFeatures |
                                    (1ull << 35) | (1ull << 36) | (1ull << 37) | (1ull << 38) | (1ull << 39) |
                                    (1ull << 40) | (1ull << 41);

// virtio-net features (virtio 1.x, 5.1.3) the core must know of.
constexpr uint64_t kNetMac = 1ull << 5, kNetStatus = 1ull << 16, kNetCtrlVq = 1ull << 17, kNetMq = 1ull << 22;
// Those that need the control queue, which a back-end without a configuration space of its
// own is not asked to serve.
constexpr uint64_t kNetNeedsCtrlVq = kNetCtrlVq | (1ull << 18) | (1ull << 19) | (1ull << 20) | (1ull << 21) | kNetMq |
                                     (1ull << 23);

vhost_user::VirtioType known_type(const std::string& name, uint16_t id) {
  auto type = vhost_user::virtio_type(id);
  if (!type) throw InputError("device " + name + " has an unknown virtio device type " + std::to_string(id));
  return *type;
}
}  // namespace

VhostUserPciBackend::VhostUserPciBackend(std::string name, uint16_t device_type, UniqueFd socket, const GuestMemory& memory)
    : name_(std::move(name)), type_(known_type(name_, device_type)), memory_(memory) {
  frontend_.emplace(std::move(socket), kReplyTimeout);
  vhost_user::Frontend& frontend = *frontend_;
  offered_features_ = frontend.features();
  features_ = offered_features_ & ~kTransportMask;
  if (!(features_ & feature::kVersion1))
    throw InputError("vhost-user back-end " + name_ + " does not offer VIRTIO_F_VERSION_1");
  uint32_t queues = frontend.queue_num();
  if (type_.name == "net" && !frontend.has_config()) {
    config_ = front_end_net_config();
    queues = 2;
  } else {
    config_ = frontend.get_config(type_.config_size);
  }
  if (type_.name == "scsi") {
    uint32_t request_queues;
    std::memcpy(&request_queues, config_.data(), 4);
    queues = 2 + std::max(request_queues, 1u);
  } else if (type_.name == "net" && frontend.has_config()) {
    // Receive and transmit rings per pair the back-end offers, then its control queue.
    uint16_t pairs = 1;
    if (features_ & kNetMq) std::memcpy(&pairs, config_.data() + 8, 2);
    queues = 2u * std::max<uint16_t>(pairs, 1) + ((features_ & kNetCtrlVq) ? 1 : 0);
  } else if (queues == 0) {
    queues = type_.default_queues;
  }
  if (queues == 0 || queues > 64) throw InputError("vhost-user back-end " + name_ + " has " + std::to_string(queues) + " queues");
  queues_ = static_cast<uint16_t>(queues);
}

// A virtio-net back-end without GET_CONFIG (DPDK's, for one) leaves the configuration to its
// front-end: one queue pair, link up, and a random locally administered address (QEMU gives
// every such NIC the same one unless told otherwise).
std::vector<uint8_t> VhostUserPciBackend::front_end_net_config() {
  features_ = (features_ & ~kNetNeedsCtrlVq) | kNetMac | kNetStatus;
  std::vector<uint8_t> config(type_.config_size, 0);
  uint8_t mac[6];
  // Six random bytes into our buffer.
  if (::getrandom(mac, sizeof mac, 0) != sizeof mac) throw_errno("getrandom");
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);  // locally administered, unicast
  std::memcpy(config.data(), mac, 6);
  config[6] = 1;  // VIRTIO_NET_S_LINK_UP
  config[8] = 1;  // max_virtqueue_pairs
  spdlog::info("{}: the back-end has no configuration space; MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", name_,
               mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return config;
}

void VhostUserPciBackend::read_config(uint32_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  if (offset + data.size() <= config_.size()) std::memcpy(data.data(), config_.data() + offset, data.size());
}

template <typename F>
bool VhostUserPciBackend::guarded(F f) {
  try {
    f();
    return true;
  } catch (const vhost_user::PeerTimeout& e) {
    lost_why_ = e.what();
  } catch (const std::exception& e) {
    pollfd p{frontend_->fd(), POLLRDHUP, 0};
    // A zero-timeout look at our own socket: a hang-up means the back-end is gone, anything
    // else is its answer (a refusal) and goes to the caller.
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR))) throw;
    lost_why_ = std::string("it hung up (") + e.what() + ")";
  }
  spdlog::warn("{}: lost the back-end: {}", name_, lost_why_);
  // Our own socket: the main thread sees the hang-up and reports it (the fd stays open until then).
  ::shutdown(frontend_->fd(), SHUT_RDWR);
  return false;
}

void VhostUserPciBackend::write_config(uint32_t offset, std::span<const uint8_t> data) {
  if (offset + data.size() > config_.size()) return;
  std::lock_guard lock(mutex_);
  try {
    // A back-end that is down gets the write when it comes back.
    if (usable()) guarded([&] { frontend_->set_config(offset, data); });
  } catch (const InputError& e) {
    spdlog::warn("{}: config write at {} refused: {}", name_, offset, e.what());
    return;
  }
  std::memcpy(config_.data() + offset, data.data(), data.size());
  config_writes_[offset].assign(data.begin(), data.end());
}

void VhostUserPciBackend::set_device_config(uint32_t offset, std::span<const uint8_t> data) {
  if (offset + data.size() > config_.size()) throw std::logic_error("device config write out of range");
  std::lock_guard lock(mutex_);
  std::memcpy(config_.data() + offset, data.data(), data.size());
}

uint64_t VhostUserPciBackend::guest_to_frontend(uint64_t gpa, uint64_t length) const {
  // vhost-user ring addresses are the front-end's (our) virtual addresses.
  return reinterpret_cast<uint64_t>(memory_.require_range(gpa, length, "virtqueue"));
}

void VhostUserPciBackend::activate(uint64_t features, const std::vector<Queue>& queues) {
  std::lock_guard lock(mutex_);
  active_ = Activation{features, queues};
  started_.clear();
  if (usable()) guarded([&] { start(false); });
}

void VhostUserPciBackend::start(bool resume) {
  frontend_->set_features(active_->features);
  std::vector<vhost_user::Frontend::Region> regions;
  for (const RamRegion& r : memory_.regions())
    regions.push_back({{r.guest_address, r.size, reinterpret_cast<uint64_t>(r.host), r.file_offset}, memory_.fd()});
  frontend_->set_memory(regions);
  uint16_t max_size = 0;
  for (const Queue& q : active_->queues) max_size = std::max(max_size, q.size);
  frontend_->setup_inflight(queues_, max_size);
  for (const Queue& q : active_->queues) {
    uint16_t base = 0;
    if (resume) {
      // used->idx, 2-byte aligned in guest RAM (the transport checked the ring's alignment);
      // what the dead back-end popped but never used is in the inflight region.
      const uint8_t* used = memory_.require_range(q.used, 4, "used ring");
      base = __atomic_load_n(reinterpret_cast<const uint16_t*>(used + 2), __ATOMIC_ACQUIRE);
    }
    vhost_user::Frontend::QueueStart start{q.index,
                                           q.size,
                                           guest_to_frontend(q.desc, 16ull * q.size),
                                           guest_to_frontend(q.avail, 6ull + 2ull * q.size),
                                           guest_to_frontend(q.used, 6ull + 8ull * q.size),
                                           base,
                                           q.kick,
                                           q.call,
                                           q.err};
    frontend_->start_queue(start);
    started_.push_back(q.index);
  }
}

void VhostUserPciBackend::reset() {
  std::lock_guard lock(mutex_);
  active_.reset();
  // A reset guest starts with empty rings: nothing of before may be resubmitted, whatever
  // happens to the back-end from here on.
  kept_inflight_ = {};
  if (frontend_) frontend_->drop_inflight();
  if (!usable()) return started_.clear();
  guarded([&] {
    // Where each ring stopped does not matter: a reset driver starts them afresh.
    for (uint16_t index : started_) [[maybe_unused]] uint16_t next = frontend_->stop_queue(index);
    started_.clear();
    frontend_->reset_device();
  });
}

int VhostUserPciBackend::socket_fd() {
  std::lock_guard lock(mutex_);
  return frontend_ ? frontend_->fd() : -1;
}

std::string VhostUserPciBackend::disconnect() {
  std::lock_guard lock(mutex_);
  std::string why = lost_why_;
  if (frontend_) kept_inflight_ = frontend_->release_inflight();
  frontend_.reset();
  lost_why_.clear();
  started_.clear();
  return why;
}

void VhostUserPciBackend::reconnect(UniqueFd socket) {
  std::lock_guard lock(mutex_);
  if (frontend_) {  // a restart the main thread had not seen the hang-up of yet
    kept_inflight_ = frontend_->release_inflight();
    frontend_.reset();
  }
  lost_why_.clear();
  started_.clear();
  vhost_user::Frontend fresh(std::move(socket), kReplyTimeout);
  if (fresh.features() != offered_features_)
    throw InputError("the restarted back-end offers other features than the first one did");
  fresh.adopt_inflight(std::move(kept_inflight_));
  frontend_.emplace(std::move(fresh));
  guarded([&] {
    if (frontend_->has_config())
      for (const auto& [offset, bytes] : config_writes_) frontend_->set_config(offset, bytes);
    if (active_) start(true);
  });
}

}  // namespace bulkhead::core
