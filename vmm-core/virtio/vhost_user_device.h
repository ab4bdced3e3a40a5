// A virtio device whose implementation is a vhost-user back-end in another process (one of
// Bulkhead's device processes, or a third party's such as qemu-storage-daemon): the link
// between the core's virtio-pci transport and the back-end's rings.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vhost-user/frontend.h"
#include "vmm-core/guest_memory.h"
#include "vmm-core/virtio/virtio_pci.h"

namespace bulkhead::core {

enum class VirtioType : uint16_t { kNet = 1, kBlock = 2, kScsi = 8 };

class VhostUserDevice : public VirtioLink {
 public:
  static constexpr uint16_t kQueueSize = 256;

  VhostUserDevice(std::string name, VirtioType type, UniqueFd socket, const GuestMemory& memory);

  const std::string& name() const { return name_; }
  int socket_fd() const { return frontend_.fd(); }

  uint16_t device_type() const override { return static_cast<uint16_t>(type_); }
  uint64_t device_features() const override { return features_; }
  uint16_t queue_count() const override { return queues_; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  uint32_t config_size() const override { return static_cast<uint32_t>(config_.size()); }
  void read_config(uint32_t offset, std::span<uint8_t> data) override;
  void write_config(uint32_t offset, std::span<const uint8_t> data) override;
  void activate(uint64_t features, const std::vector<Queue>& queues) override;
  void reset() override;

 private:
  uint64_t guest_to_frontend(uint64_t gpa, uint64_t length) const;

  std::string name_;
  VirtioType type_;
  vhost_user::Frontend frontend_;
  const GuestMemory& memory_;
  uint64_t features_;
  uint16_t queues_;
  std::vector<uint8_t> config_;
  std::vector<uint16_t> started_;  // indices of running rings
};

}  // namespace bulkhead::core
