// A virtio device whose implementation is a vhost-user back-end in another process (one of
// Bulkhead's device processes, or a third party's such as qemu-storage-daemon): the link
// between the core's virtio-pci transport and the back-end's rings.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
  VhostUserPciBackend(std::string name, uint16_t device_type, UniqueFd socket, const GuestMemory& memory);

  const std::string& name() const { return name_; }
  // The socket to watch for a hang-up; -1 while the back-end is down.
  int socket_fd();
  // Main thread: the socket hung up (the process died, or a request timed out and the
  // socket was shut down). Forgets the connection and returns why ("" for a hang-up that no
  // request of ours ran into: the process exited or closed the socket); what the driver does
  // meanwhile is kept for reconnect().
  std::string disconnect();
  // Main thread: a restarted back-end. Replays the set-up (features, memory table, inflight
  // region, rings from where the guest's used ring stands, configuration writes); the new
  // back-end resubmits what the old one left in flight. Throws if it cannot serve what was
  // negotiated.
  void reconnect(UniqueFd socket);

  uint16_t device_type() const override { return type_.id; }
  uint32_t pci_class() const override { return type_.pci_class; }
  uint64_t device_features() const override { return features_; }
  uint16_t queue_count() const override { return queues_; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  uint32_t config_size() const override { return static_cast<uint32_t>(config_.size()); }
  void read_config(uint32_t offset, std::span<uint8_t> data) override;
  void write_config(uint32_t offset, std::span<const uint8_t> data) override;
  // A field the device side writes changes at the operator's request (the balloon's
  // num_pages): the driver reads the new value from now on, a restarted back-end's too. The
  // caller tells the driver (VirtioPciDevice::config_changed).
  void set_device_config(uint32_t offset, std::span<const uint8_t> data);
  void activate(uint64_t features, const std::vector<Queue>& queues) override;
  void reset() override;

 private:
  struct Activation {
    uint64_t features;
    std::vector<Queue> queues;
  };
  std::vector<uint8_t> front_end_net_config();
  uint64_t guest_to_frontend(uint64_t gpa, uint64_t length) const;
  // Runs the rings of `active_`; `resume`: each from where the guest's used ring stands.
  void start(bool resume);
  // Whether requests can go to the back-end now.
  bool usable() const { return frontend_ && lost_why_.empty(); }
  // Runs requests to the back-end; returns false if it was lost meanwhile (a timeout, or a
  // hang-up): then the socket is shut down for the main thread to see, and the work waits
  // for reconnect(). A back-end that refuses a request throws.
  template <typename F>
  bool guarded(F f);

  std::string name_;
  vhost_user::VirtioType type_;
  const GuestMemory& memory_;
  uint64_t offered_features_;  // as the first back-end offered them: every later one must too
  uint64_t features_;
  uint16_t queues_;
  std::vector<uint8_t> config_;

  std::mutex mutex_;  // vCPUs (the driver's actions) against the main thread (reconnects)
  std::optional<vhost_user::Frontend> frontend_;  // empty while the back-end is down
  std::string lost_why_;
  vhost_user::Frontend::InflightRegion kept_inflight_;  // between a back-end and the next
  std::optional<Activation> active_;  // what the driver started (DRIVER_OK), until it resets
  std::map<uint32_t, std::vector<uint8_t>> config_writes_;  // by offset, replayed to a new back-end
  std::vector<uint16_t> started_;  // indices of running rings
};

}  // namespace bulkhead::core
