// A virtio device whose implementation is a vhost-user back-end in another process (one of
// Bulkhead's device processes, or a third party's such as qemu-storage-daemon): the link
// between the core's virtio-pci transport and the back-end's rings.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vhost-user/frontend.h"
#include "vhost-user/virtio_types.h"
#include "vmm-core/guest_memory.h"
#include "vmm-core/virtio/virtio_pci.h"

namespace bulkhead::core {

class VhostUserPciBackend : public VirtioPciBackend {
 public:
  static constexpr uint16_t kQueueSize = 256;
  // A back-end that does not answer a request within this bound is treated as lost.
  static constexpr auto kReplyTimeout = std::chrono::seconds(10);

  // Throws InputError for an unknown device type or a back-end that cannot serve it.
  // `lost(why)` is called once if the back-end stops answering.
  VhostUserPciBackend(std::string name, uint16_t device_type, UniqueFd socket, const GuestMemory& memory,
                  std::function<void(const std::string&)> lost);

  const std::string& name() const { return name_; }
  int socket_fd() const { return frontend_.fd(); }

  uint16_t device_type() const override { return type_.id; }
  uint32_t pci_class() const override { return type_.pci_class; }
  uint64_t device_features() const override { return features_; }
  uint16_t queue_count() const override { return queues_; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  uint32_t config_size() const override { return static_cast<uint32_t>(config_.size()); }
  void read_config(uint32_t offset, std::span<uint8_t> data) override;
  void write_config(uint32_t offset, std::span<const uint8_t> data) override;
  void activate(uint64_t features, const std::vector<Queue>& queues) override;
  void reset() override;

 private:
  std::vector<uint8_t> front_end_net_config();
  uint64_t guest_to_frontend(uint64_t gpa, uint64_t length) const;
  void start(uint64_t features, const std::vector<Queue>& queues);
  // Runs a request; a timeout reports the back-end lost before the error goes on.
  template <typename F>
  auto guarded(F f) -> decltype(f());

  std::string name_;
  vhost_user::VirtioType type_;
  vhost_user::Frontend frontend_;
  const GuestMemory& memory_;
  std::function<void(const std::string&)> lost_;
  uint64_t features_;
  uint16_t queues_;
  std::vector<uint8_t> config_;
  std::vector<uint16_t> started_;  // indices of running rings
};

}  // namespace bulkhead::core
