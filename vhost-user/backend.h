// A vhost-user back-end: answers a front-end (Bulkhead's core, QEMU, ...) and runs the
// virtqueues of one virtio device. The device implements BackendDevice; this class owns the
// protocol, the memory map, the rings, the kick/call/err descriptors and the inflight region.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/event_loop.h"
#include "common/mapping.h"
#include "common/unique_fd.h"
#include "vhost-user/connection.h"
#include "vhost-user/memory_map.h"
#include "vhost-user/virtqueue.h"

namespace bulkhead::vhost_user {

class Backend;

// One virtqueue as a device sees it.
class Queue {
 public:
  uint32_t index() const { return index_; }
  SplitQueue& ring() { return ring_; }
  const MemoryMap& memory() const;
  // Completes a request; the driver is notified by flush_notifications().
  void complete(uint16_t head, uint32_t written);
  // Completes several requests at once: the driver sees all of them or none.
  void complete_all(std::span<const SplitQueue::Used> used);
  // Sends the call notification if the driver asked for one since the last flush.
  void flush_notifications();
  // For a device that found no buffer it waits for (available_is_work() false): the driver
  // is to kick again; true if buffers arrived meanwhile.
  bool want_kicks();
  // Started, enabled and not broken: requests may be taken from it and completed.
  bool ready() const { return ring_.running() && enabled_ && !broken_; }

 private:
  friend class Backend;
  Queue(Backend& backend, uint32_t index) : backend_(backend), index_(index) {}

  Backend& backend_;
  uint32_t index_;
  SplitQueue ring_;
  uint16_t num_ = 0;
  VringAddr addr_{};
  bool addr_set_ = false;
  bool kick_set_ = false;
  uint16_t base_ = 0;
  bool enabled_ = false;
  bool broken_ = false;
  bool pending_notify_ = false;
  UniqueFd kick_, call_, err_;
};

// What a virtio device implements to be served over vhost-user.
class BackendDevice {
 public:
  virtual ~BackendDevice() = default;
  // Virtio feature bits offered (device bits and VERSION_1, INDIRECT_DESC, EVENT_IDX...).
  virtual uint64_t features() const = 0;
  virtual uint32_t queue_count() const = 0;
  virtual uint16_t max_queue_size() const { return 1024; }
  // Device configuration space.
  virtual std::vector<uint8_t> config() const { return {}; }
  // The features the driver accepted (SET_FEATURES), before any queue starts.
  virtual void set_features(uint64_t /*acked*/) {}
  virtual bool write_config(uint32_t /*offset*/, std::span<const uint8_t> /*bytes*/) { return false; }
  // The driver made buffers available on `queue` (or a restarted queue has resubmissions).
  virtual void process(Queue& queue) = 0;
  // Whether buffers waiting on `queue` are work to do now. A NIC's receive buffers are not:
  // they wait for frames, and the device may sleep while the driver keeps some there.
  virtual bool available_is_work(const Queue& /*queue*/) const { return true; }
  // `chains` were in flight in an earlier back-end (inflight tracking); redo them.
  virtual void resubmit(Queue& queue, std::vector<Chain> chains) = 0;
  // Wait until no request of `queue` is still being processed (before the ring stops or
  // guest memory is remapped).
  virtual void drain(Queue& queue) = 0;
  virtual void reset() {}
  // Adaptive polling (device-procs/common/adaptive_poll.h): completes finished work without
  // system calls, true if any; and whether work is still in flight elsewhere.
  virtual bool poll_completions() { return false; }
  virtual bool busy() const { return false; }
};

class Backend {
 public:
  // Protocol features this back-end offers.
  static constexpr uint64_t kProtocolFeatures = protocol_feature::kMq | protocol_feature::kReplyAck |
                                                protocol_feature::kConfig | protocol_feature::kInflightShmfd |
                                                protocol_feature::kResetDevice | protocol_feature::kConfigureMemSlots |
                                                protocol_feature::kStatus;

  Backend(BackendDevice& device, EventLoop& loop, UniqueFd socket);
  ~Backend();

  // False once the front-end hung up (or broke the protocol, which is logged).
  bool connected() const { return connected_; }
  Queue& queue(uint32_t index) { return *queues_[index]; }
  uint64_t acked_features() const { return acked_features_; }
  const MemoryMap& memory() const { return memory_; }

  // Handles one message (public for fuzzing); throws InputError on protocol violations.
  void handle(Message& message);

  // Adaptive polling: processes every ready queue with kicks suppressed; true if any
  // request was found. rearm() asks for kicks again before the device sleeps and returns
  // true if requests arrived meanwhile.
  bool poll();
  bool rearm();

 private:
  friend class Queue;
  void on_socket();
  // `signalled`: its kick eventfd is readable.
  void on_kick(Queue& q, bool signalled = false);
  void disconnect(const std::string& why);
  Queue& queue_for(uint32_t index, const char* what);
  void set_queue_fd(Message& m, UniqueFd Queue::*member, const char* what);
  void try_start(Queue& q);
  void stop(Queue& q);
  void relocate_rings();
  void reply(const Message& request, bool ok);
  void get_config(const Message& m);
  void get_inflight(const Message& m);
  void set_inflight(Message& m);
  uint8_t* inflight_slice(const Queue& q);
  void signal(const UniqueFd& fd);

  BackendDevice& device_;
  EventLoop& loop_;
  Connection connection_;
  bool connected_ = true;
  std::vector<std::unique_ptr<Queue>> queues_;
  MemoryMap memory_;
  uint64_t acked_features_ = 0;
  uint64_t protocol_features_ = 0;
  uint8_t status_ = 0;
  UniqueFd inflight_fd_;
  Mapping inflight_;
  uint16_t inflight_queue_size_ = 0;
  uint16_t inflight_queues_ = 0;
};

}  // namespace bulkhead::vhost_user
