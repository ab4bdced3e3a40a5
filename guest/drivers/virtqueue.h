// The driver side of a split virtqueue (no EVENT_IDX; indirect tables optional).
#pragma once

#include <stdint.h>

namespace guest {

struct Segment {
  const void* addr;
  uint32_t len;
  bool device_writes;
};

class Virtqueue {
 public:
  // Allocates rings for `size` entries (a power of two).
  void init(uint16_t size, bool indirect);
  // After feature negotiation: whether VIRTIO_F_EVENT_IDX is in use, and whether the driver
  // wants interrupts (false: it polls, so the device is asked never to interrupt).
  void configure(bool event_idx, bool interrupts);
  // After add(): whether the device wants a notification for what was added since the last one.
  bool kick_needed();
  uint16_t size() const { return size_; }
  uint64_t desc_addr() const;
  uint64_t avail_addr() const;
  uint64_t used_addr() const;

  // Publishes a request made of `count` segments (readable first); returns false when full.
  // With `indirect`, the segments go into one indirect table and take one ring slot.
  bool add(const Segment* segs, int count, uint64_t token, bool indirect = false);
  // A completed request: its token and the bytes the device wrote. False if none yet.
  bool pop(uint64_t* token, uint32_t* written);
  // Whether the device completed something pop() has not returned yet.
  bool used_pending() const;
  uint16_t free_count() const { return free_count_; }

 private:
  struct Desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
  };
  Desc* desc_ = nullptr;
  uint16_t* avail_ = nullptr;  // flags, idx, ring[size]
  uint8_t* used_ = nullptr;    // flags, idx, ring[size] of {id, len}
  uint16_t size_ = 0;
  uint16_t free_head_ = 0;
  uint16_t free_count_ = 0;
  uint16_t last_used_ = 0;
  uint16_t kicked_at_ = 0;  // avail idx at the last notification
  bool event_idx_ = false;
  bool interrupts_ = true;
  uint64_t* tokens_ = nullptr;
  uint16_t* chain_len_ = nullptr;
  Desc* indirect_ = nullptr;  // one table of kMaxIndirect per ring slot
};

}  // namespace guest
