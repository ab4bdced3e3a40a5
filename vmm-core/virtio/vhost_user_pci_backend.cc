#include "vmm-core/virtio/vhost_user_pci_backend.h"

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
  config_ = frontend_.get_config(type_.config_size);
  uint32_t queues = frontend_.queue_num();
  if (type_.name == "scsi") {
    uint32_t request_queues;
    std::memcpy(&request_queues, config_.data(), 4);
    queues = 2 + std::max(request_queues, 1u);
  } else if (queues == 0) {
    queues = type_.default_queues;
  }
  if (queues == 0 || queues > 64) throw InputError("vhost-user back-end " + name_ + " has " + std::to_string(queues) + " queues");
  queues_ = static_cast<uint16_t>(queues);
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
