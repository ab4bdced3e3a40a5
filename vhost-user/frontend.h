// A vhost-user front-end: what the core uses to drive any back-end, Bulkhead's device
// processes or third-party ones such as qemu-storage-daemon. Calls are synchronous.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"
#include "vhost-user/connection.h"

namespace bulkhead::vhost_user {

class Frontend {
 public:
  // Protocol features the front-end uses when the back-end offers them.
  static constexpr uint64_t kWantedProtocolFeatures = protocol_feature::kMq | protocol_feature::kReplyAck |
                                                      protocol_feature::kConfig | protocol_feature::kInflightShmfd |
                                                      protocol_feature::kResetDevice |
                                                      protocol_feature::kConfigureMemSlots;

  struct Region {
    MemoryRegion region;  // userspace_addr: where the core maps it
    int fd;
  };
  struct QueueStart {
    uint32_t index;
    uint16_t size;
    uint64_t desc, avail, used;  // front-end virtual addresses
    uint16_t base;
    int kick, call, err;  // err may be -1
  };

  // Negotiates protocol features and takes ownership of the back-end. Every request that
  // expects an answer throws PeerTimeout when none comes within `reply_timeout`.
  Frontend(UniqueFd socket, std::chrono::milliseconds reply_timeout);

  // SET_MEM_TABLE for `regions`, their descriptors appended to `fds` (legacy devices use it too).
  static Message memory_table(const std::vector<Region>& regions, std::vector<int>& fds);

  int fd() const { return connection_.fd(); }
  uint64_t features() const { return features_; }  // what the back-end offers (virtio bits)
  uint32_t queue_num() const { return queue_num_; }  // 0 if the back-end did not say
  // Whether it serves GET_CONFIG (a virtio-net back-end need not: its front-end keeps the
  // configuration, as QEMU does for DPDK's).
  bool has_config() const { return protocol_features_ & protocol_feature::kConfig; }

  std::vector<uint8_t> get_config(uint32_t size);
  void set_config(uint32_t offset, std::span<const uint8_t> bytes);
  void set_features(uint64_t features);
  void set_memory(const std::vector<Region>& regions);
  // Gets (once) and hands back the inflight region, before rings start; no-op if unsupported.
  void setup_inflight(uint16_t queues, uint16_t queue_size);
  void drop_inflight();
  // The inflight region outlives a back-end that dies: the front-end keeps it and hands it
  // to the next one, which resubmits what the dead one left in flight.
  struct InflightRegion {
    UniqueFd fd;
    InflightDescription description{};
  };
  InflightRegion release_inflight() { return {std::move(inflight_fd_), inflight_}; }
  void adopt_inflight(InflightRegion region) {
    inflight_fd_ = std::move(region.fd);
    inflight_ = region.description;
  }
  void start_queue(const QueueStart& q);
  // Stops a ring; returns the next available index (for a later restart).
  [[nodiscard]] uint16_t stop_queue(uint32_t index);
  void reset_device();

 private:
  // Sends a request that has no reply, with REPLY_ACK when negotiated so errors surface.
  void command(Message m, std::span<const int> fds, const char* what);
  template <typename T>
  void command(Request r, const T& body, std::span<const int> fds, const char* what) {
    command(Message::make(static_cast<uint32_t>(r), body), fds, what);
  }
  uint64_t query(Request r);

  Connection connection_;
  uint64_t features_ = 0;
  bool protocol_negotiated_ = false;
  uint64_t protocol_features_ = 0;
  uint32_t queue_num_ = 0;
  bool memory_sent_ = false;
  UniqueFd inflight_fd_;
  InflightDescription inflight_{};
};

}  // namespace bulkhead::vhost_user
