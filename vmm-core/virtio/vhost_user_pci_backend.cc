#include "vmm-core/virtio/vhost_user_pci_backend.h"

#include <sys/random.h>

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

VhostUserPciBackend::VhostUserPciBackend(std::string name, uint16_t device_type, UniqueFd socket, const GuestMemory& memory,
                                 std::function<void(const std::string&)> lost)
    : name_(std::move(name)),
      type_(known_type(name_, device_type)),
      frontend_(std::move(socket), kReplyTimeout),
      memory_(memory),
      lost_(std::move(lost)) {
  features_ = frontend_.features() & ~kTransportMask;
  if (!(features_ & feature::kVersion1))
    throw InputError("vhost-user back-end " + name_ + " does not offer VIRTIO_F_VERSION_1");
  uint32_t queues = frontend_.queue_num();
  if (type_.name == "net" && !frontend_.has_config()) {
    config_ = front_end_net_config();
    queues = 2;
  } else {
    config_ = frontend_.get_config(type_.config_size);
  }
  if (type_.name == "scsi") {
    uint32_t request_queues;
    std::memcpy(&request_queues, config_.data(), 4);
    queues = 2 + std::max(request_queues, 1u);
  } else if (type_.name == "net" && frontend_.has_config()) {
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
  if (offset + data.size() <= config_.size()) std::memcpy(data.data(), config_.data() + offset, data.size());
}

template <typename F>
auto VhostUserPciBackend::guarded(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const vhost_user::PeerTimeout& e) {
    lost_(e.what());
    throw;
  }
}

void VhostUserPciBackend::write_config(uint32_t offset, std::span<const uint8_t> data) {
  if (offset + data.size() > config_.size()) return;
  try {
    guarded([&] { frontend_.set_config(offset, data); });
    std::memcpy(config_.data() + offset, data.data(), data.size());
  } catch (const InputError& e) {
    spdlog::warn("{}: config write at {} refused: {}", name_, offset, e.what());
  }
}

uint64_t VhostUserPciBackend::guest_to_frontend(uint64_t gpa, uint64_t length) const {
  // vhost-user ring addresses are the front-end's (our) virtual addresses.
  return reinterpret_cast<uint64_t>(memory_.require_range(gpa, length, "virtqueue"));
}

void VhostUserPciBackend::activate(uint64_t features, const std::vector<Queue>& queues) {
  guarded([&] { start(features, queues); });
}

void VhostUserPciBackend::start(uint64_t features, const std::vector<Queue>& queues) {
  frontend_.set_features(features);
  std::vector<vhost_user::Frontend::Region> regions;
  for (const RamRegion& r : memory_.regions())
    regions.push_back({{r.guest_address, r.size, reinterpret_cast<uint64_t>(r.host), r.file_offset}, memory_.fd()});
  frontend_.set_memory(regions);
  uint16_t max_size = 0;
  for (const Queue& q : queues) max_size = std::max(max_size, q.size);
  frontend_.setup_inflight(queues_, max_size);
  for (const Queue& q : queues) {
    vhost_user::Frontend::QueueStart start{q.index,
                                           q.size,
                                           guest_to_frontend(q.desc, 16ull * q.size),
                                           guest_to_frontend(q.avail, 6ull + 2ull * q.size),
                                           guest_to_frontend(q.used, 6ull + 8ull * q.size),
                                           0,
                                           q.kick,
                                           q.call,
                                           q.err};
    frontend_.start_queue(start);
    started_.push_back(q.index);
  }
}

void VhostUserPciBackend::reset() {
  guarded([&] {
    // Where each ring stopped does not matter: a reset driver starts them afresh.
    for (uint16_t index : started_) [[maybe_unused]] uint16_t next = frontend_.stop_queue(index);
    started_.clear();
    frontend_.reset_device();
    frontend_.drop_inflight();  // a reset guest starts with empty rings
  });
}

}  // namespace bulkhead::core
