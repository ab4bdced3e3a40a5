#include "vhost-user/virtqueue.h"

#include <array>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace bulkhead::vhost_user {

namespace {
constexpr uint16_t kAvailNoInterrupt = 1;
constexpr uint64_t kMaxChainBytes = 1ull << 32;  // virtio: a chain is at most 4 GiB

bool need_event(uint16_t event, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event - 1) < static_cast<uint16_t>(new_idx - old_idx);
}
}  // namespace

size_t inflight_queue_bytes(uint16_t queue_size) {
  size_t bytes = sizeof(InflightSplitHeader) + sizeof(InflightSplitDesc) * queue_size;
  return (bytes + 63) & ~size_t{63};
}

uint16_t SplitQueue::load16(const uint8_t* p) const {
  // Ring fields are 2-byte aligned (checked in start()); the guest writes them concurrently.
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(p), __ATOMIC_ACQUIRE);
}

void SplitQueue::store16(uint8_t* p, uint16_t v) {
  // Same alignment argument; release so the driver sees earlier writes first.
  __atomic_store_n(reinterpret_cast<uint16_t*>(p), v, __ATOMIC_RELEASE);
}

void SplitQueue::set_avail_event(uint16_t v) { store16(rings_.used + 4 + 8ull * size_, v); }

void SplitQueue::start(uint16_t size, Rings rings, uint16_t next_avail, uint64_t features, uint8_t* inflight) {
  if (size == 0 || size > kMaxQueueSize || (size & (size - 1)))
    throw QueueBroken("queue size " + std::to_string(size) + " is not a power of two up to 32768");
  if (reinterpret_cast<uintptr_t>(rings.desc) % 16 || reinterpret_cast<uintptr_t>(rings.avail) % 2 ||
      reinterpret_cast<uintptr_t>(rings.used) % 4)
    throw QueueBroken("ring addresses are misaligned");
  size_ = size;
  rings_ = rings;
  next_avail_ = next_avail;
  used_idx_ = load16(rings_.used + 2);
  event_idx_ = features & feature::kEventIdx;
  indirect_ = features & feature::kIndirectDesc;
  signalled_valid_ = false;
  head_in_flight_.assign(size, false);
  in_flight_count_ = 0;
  inflight_ = inflight;
  resubmit_.clear();
  if (inflight_) recover_inflight();
  running_ = true;
}

void SplitQueue::recover_inflight() {
  InflightSplitHeader* h = inflight_header();
  InflightSplitDesc* d = inflight_desc();
  if (h->version == 0 || h->desc_num != size_) {
    // A fresh region (or one for another queue size): nothing to recover.
    std::memset(inflight_, 0, inflight_queue_bytes(size_));
    h->version = 1;
    h->desc_num = size_;
    h->used_idx = used_idx_;
    inflight_counter_ = 1;
    return;
  }
  // The earlier back-end may have published used->idx without clearing the batch's
  // inflight flags: those requests are complete.
  uint16_t batch = static_cast<uint16_t>(used_idx_ - h->used_idx);
  uint16_t at = h->last_batch_head;
  for (uint16_t i = 0; i < batch && at < size_; ++i) {
    d[at].inflight = 0;
    at = d[at].next;
  }
  h->used_idx = used_idx_;
  uint64_t max_counter = 0;
  for (uint16_t i = 0; i < size_; ++i) {
    if (d[i].inflight != 1) {
      d[i].inflight = 0;
      continue;
    }
    resubmit_.push_back(i);
    max_counter = std::max(max_counter, d[i].counter);
  }
  std::sort(resubmit_.begin(), resubmit_.end(), [d](uint16_t a, uint16_t b) { return d[a].counter < d[b].counter; });
  inflight_counter_ = max_counter + 1;
  // Every request the earlier back-end popped is either used or still in flight.
  next_avail_ = static_cast<uint16_t>(used_idx_ + resubmit_.size());
  for (uint16_t head : resubmit_) head_in_flight_[head] = true;
  in_flight_count_ = static_cast<uint32_t>(resubmit_.size());
}

std::vector<Chain> SplitQueue::take_resubmissions(const MemoryMap& memory) {
  std::vector<Chain> chains;
  for (uint16_t head : resubmit_) chains.push_back(walk(head, memory));
  resubmit_.clear();
  return chains;
}

void SplitQueue::add_buffer(const Descriptor& d, const MemoryMap& memory, Chain& chain, bool& seen_writable) const {
  if (d.len == 0) throw QueueBroken("zero-length descriptor");
  bool writable = d.flags & kDescWrite;
  if (!writable && seen_writable) throw QueueBroken("device-readable descriptor after a device-writable one");
  seen_writable |= writable;
  uint64_t& total = writable ? chain.writable_bytes : chain.readable_bytes;
  if (chain.readable_bytes + chain.writable_bytes + d.len > kMaxChainBytes) throw QueueBroken("descriptor chain longer than 4 GiB");
  if (!memory.gpa_to_ranges(d.addr, d.len, writable ? chain.writable : chain.readable))
    throw QueueBroken("descriptor points outside guest memory");
  total += d.len;
}

Chain SplitQueue::walk(uint16_t head, const MemoryMap& memory) const {
  if (head >= size_) throw QueueBroken("descriptor head " + std::to_string(head) + " out of range");
  Chain chain;
  chain.head = head;
  bool seen_writable = false;
  uint16_t index = head;
  for (uint32_t count = 0;; ++count) {
    if (count >= size_) throw QueueBroken("descriptor chain loops or is longer than the queue");
    Descriptor d;
    // Copied once, so the guest cannot change a field between our check and our use.
    std::memcpy(&d, rings_.desc + 16ull * index, sizeof d);
    if (d.flags & kDescIndirect) {
      if (!indirect_) throw QueueBroken("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      if (count != 0) throw QueueBroken("indirect descriptor inside a chain");
      if (d.flags & kDescNext) throw QueueBroken("indirect descriptor with NEXT set");
      if (d.len == 0 || d.len % sizeof(Descriptor) || d.len / sizeof(Descriptor) > kMaxIndirectEntries)
        throw QueueBroken("indirect table of " + std::to_string(d.len) + " bytes");
      const uint8_t* table = memory.gpa_to_host(d.addr, d.len);
      if (!table) throw QueueBroken("indirect table outside guest memory");
      uint32_t entries = d.len / sizeof(Descriptor);
      uint16_t i = 0;
      for (uint32_t n = 0;; ++n) {
        if (n >= entries) throw QueueBroken("indirect chain loops");
        Descriptor in;
        std::memcpy(&in, table + 16ull * i, sizeof in);
        if (in.flags & kDescIndirect) throw QueueBroken("nested indirect descriptor");
        add_buffer(in, memory, chain, seen_writable);
        if (!(in.flags & kDescNext)) break;
        if (in.next >= entries) throw QueueBroken("indirect next index out of range");
        i = in.next;
      }
      return chain;
    }
    add_buffer(d, memory, chain, seen_writable);
    if (!(d.flags & kDescNext)) return chain;
    if (d.next >= size_) throw QueueBroken("next index out of range");
    index = d.next;
  }
}

std::optional<Chain> SplitQueue::pop(const MemoryMap& memory) {
  if (!running_) return std::nullopt;
  uint16_t avail = avail_idx();
  if (avail == next_avail_) {
    if (!event_idx_ || !kicks_enabled_) return std::nullopt;
    // Ask for a kick on the next buffer, then look again: the driver may have added one
    // before it could see our request.
    set_avail_event(next_avail_);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    avail = avail_idx();
    if (avail == next_avail_) return std::nullopt;
  }
  if (static_cast<uint16_t>(avail - next_avail_) > size_) throw QueueBroken("avail index ran ahead of the queue size");
  uint16_t head = load16(rings_.avail + 4 + 2ull * (next_avail_ % size_));
  if (head >= size_) throw QueueBroken("avail ring names descriptor " + std::to_string(head));
  if (head_in_flight_[head]) throw QueueBroken("descriptor " + std::to_string(head) + " made available twice");
  Chain chain = walk(head, memory);
  ++next_avail_;
  if (event_idx_ && kicks_enabled_) set_avail_event(next_avail_);
  head_in_flight_[head] = true;
  ++in_flight_count_;
  if (inflight_) {
    InflightSplitDesc& d = inflight_desc()[head];
    d.counter = inflight_counter_++;
    std::atomic_thread_fence(std::memory_order_release);
    d.inflight = 1;
  }
  return chain;
}

void SplitQueue::write_used(uint16_t head, uint32_t written) {
  head_in_flight_[head] = false;
  --in_flight_count_;
  uint8_t* element = rings_.used + 4 + 8ull * (used_idx_ % size_);
  uint32_t id = head;
  std::memcpy(element, &id, 4);
  std::memcpy(element + 4, &written, 4);
  if (inflight_) {
    InflightSplitDesc& d = inflight_desc()[head];
    d.next = inflight_header()->last_batch_head;
    inflight_header()->last_batch_head = head;
  }
  ++used_idx_;
}

void SplitQueue::push(uint16_t head, uint32_t written) { push_all(std::array{Used{head, written}}); }

void SplitQueue::push_all(std::span<const Used> used) {
  std::vector<uint16_t> heads;
  for (const Used& u : used) {
    if (u.head >= size_ || !head_in_flight_[u.head]) continue;  // not ours to complete
    write_used(u.head, u.written);
    heads.push_back(u.head);
  }
  if (heads.empty()) return;
  store16(rings_.used + 2, used_idx_);
  if (!inflight_) return;
  // The inflight protocol's order: the used ring first, then each request's inflight flag,
  // then the region's used index. A back-end that dies in between finds the batch by
  // last_batch_head and never redoes what the driver already saw completed.
  std::atomic_thread_fence(std::memory_order_release);
  for (uint16_t head : heads) inflight_desc()[head].inflight = 0;
  std::atomic_thread_fence(std::memory_order_release);
  inflight_header()->used_idx = used_idx_;
}

void SplitQueue::disable_kicks() {
  kicks_enabled_ = false;
  // With EVENT_IDX a stale avail_event already means "no kick"; without it, say so.
  if (running_ && !event_idx_) store16(rings_.used, 1);  // VRING_USED_F_NO_NOTIFY
}

bool SplitQueue::enable_kicks() {
  kicks_enabled_ = true;
  if (!running_) return false;
  if (event_idx_) {
    set_avail_event(next_avail_);
  } else {
    store16(rings_.used, 0);  // clear VRING_USED_F_NO_NOTIFY
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return avail_idx() != next_avail_;
}

bool SplitQueue::should_notify() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx_) return !(load16(rings_.avail) & kAvailNoInterrupt);
  uint16_t event = load16(rings_.avail + 4 + 2ull * size_);
  bool notify = !signalled_valid_ || need_event(event, used_idx_, signalled_used_);
  signalled_valid_ = true;
  signalled_used_ = used_idx_;
  return notify;
}

}  // namespace bulkhead::vhost_user
