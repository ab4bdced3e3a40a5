// The device side of a split virtqueue (virtio 1.x, section 2.7), with EVENT_IDX, indirect
// descriptors and vhost-user inflight tracking. The guest writes these rings concurrently and
// may be hostile: every index is bounded, every descriptor is copied once before use, every
// address is translated through the memory map, and chains are limited in length. A
// malformed ring throws QueueBroken; the device then stops using the queue (NEEDS_RESET).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "vhost-user/memory_map.h"

namespace bulkhead::vhost_user {

class QueueBroken : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
inline constexpr uint32_t kMaxIndirectEntries = 1024;
inline constexpr uint16_t kMaxQueueSize = 32768;

struct Descriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(Descriptor) == 16);

// One request: the device-readable buffers, then the device-writable ones.
struct Chain {
  uint16_t head = 0;
  std::vector<HostRange> readable;
  std::vector<HostRange> writable;
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

// Inflight region layout for one split queue (vhost-user.rst, "Inflight I/O tracking").
struct InflightSplitHeader {
  uint64_t features;
  uint16_t version;
  uint16_t desc_num;
  uint16_t last_batch_head;
  uint16_t used_idx;
};
struct InflightSplitDesc {
  uint8_t inflight;
  uint8_t padding[5];
  uint16_t next;
  uint64_t counter;
};
static_assert(sizeof(InflightSplitHeader) == 16 && sizeof(InflightSplitDesc) == 16);

// Bytes of inflight region one queue of `queue_size` entries needs (cache-line multiple).
size_t inflight_queue_bytes(uint16_t queue_size);

class SplitQueue {
 public:
  struct Rings {
    uint8_t* desc;
    uint8_t* avail;
    uint8_t* used;
  };
  // Ring byte sizes for a queue of `size` entries, for address translation.
  static uint64_t desc_bytes(uint16_t size) { return 16ull * size; }
  static uint64_t avail_bytes(uint16_t size) { return 6ull + 2ull * size; }
  static uint64_t used_bytes(uint16_t size) { return 6ull + 8ull * size; }

  // Starts processing. `inflight` (may be null) is this queue's slice of the inflight
  // region; if it holds state from an earlier back-end, next_avail is recomputed from it and
  // the requests that back-end never completed become resubmissions.
  void start(uint16_t size, Rings rings, uint16_t next_avail, uint64_t features, uint8_t* inflight);
  void stop() { running_ = false; }
  bool running() const { return running_; }
  uint16_t size() const { return size_; }
  uint16_t next_avail() const { return next_avail_; }
  // Whether the driver made buffers available that pop() has not taken yet (a running ring).
  bool has_available() const { return avail_idx() != next_avail_; }
  uint32_t in_flight() const { return in_flight_count_; }

  // The next available request, or nullopt when the ring is empty.
  std::optional<Chain> pop(const MemoryMap& memory);
  // Returns the buffers of `head` to the driver, `written` bytes filled.
  void push(uint16_t head, uint32_t written);
  // Returns several at once: the driver sees all of them or none (a packet spread over
  // several receive buffers, whose first one says how many there are).
  struct Used {
    uint16_t head;
    uint32_t written;
  };
  void push_all(std::span<const Used> used);
  // Whether the driver wants an interrupt for what was pushed since the last call.
  bool should_notify();
  // While the device polls the ring it asks the driver not to kick it; before it sleeps it
  // asks again. enable_kicks() returns true if buffers arrived meanwhile (poll once more).
  void disable_kicks();
  bool enable_kicks();
  bool kicks_enabled() const { return kicks_enabled_; }
  // After a restart: requests an earlier back-end fetched but never completed, oldest first.
  std::vector<Chain> take_resubmissions(const MemoryMap& memory);

  // Builds the chain starting at `head` (exposed for fuzzing and tests).
  Chain walk(uint16_t head, const MemoryMap& memory) const;

 private:
  uint16_t load16(const uint8_t* p) const;
  void store16(uint8_t* p, uint16_t v);
  uint16_t avail_idx() const { return load16(rings_.avail + 2); }
  void set_avail_event(uint16_t v);
  void add_buffer(const Descriptor& d, const MemoryMap& memory, Chain& chain, bool& seen_writable) const;
  InflightSplitHeader* inflight_header() const { return reinterpret_cast<InflightSplitHeader*>(inflight_); }
  InflightSplitDesc* inflight_desc() const {
    return reinterpret_cast<InflightSplitDesc*>(inflight_ + sizeof(InflightSplitHeader));
  }
  void recover_inflight();
  // Writes one used element without publishing the used index.
  void write_used(uint16_t head, uint32_t written);

  bool running_ = false;
  uint16_t size_ = 0;
  Rings rings_{};
  uint16_t next_avail_ = 0;
  uint16_t used_idx_ = 0;
  bool event_idx_ = false;
  bool indirect_ = false;
  bool kicks_enabled_ = true;
  bool signalled_valid_ = false;
  uint16_t signalled_used_ = 0;
  std::vector<bool> head_in_flight_;
  uint32_t in_flight_count_ = 0;
  uint8_t* inflight_ = nullptr;
  uint64_t inflight_counter_ = 0;
  std::vector<uint16_t> resubmit_;
};

}  // namespace bulkhead::vhost_user
