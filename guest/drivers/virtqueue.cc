#include "drivers/virtqueue.h"

#include "dma.h"

namespace guest {

namespace {
constexpr uint16_t kNext = 1, kWrite = 2, kIndirect = 4;
constexpr uint16_t kAvailNoInterrupt = 1, kUsedNoNotify = 1;
constexpr int kMaxIndirect = 64;

uint16_t load16(const volatile uint16_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
}  // namespace

void Virtqueue::init(uint16_t size, bool indirect) {
  size_ = size;
  desc_ = static_cast<Desc*>(dma_alloc(sizeof(Desc) * size, 16));
  avail_ = static_cast<uint16_t*>(dma_alloc(6 + 2u * size, 2));
  used_ = static_cast<uint8_t*>(dma_alloc(6 + 8u * size, 4));
  tokens_ = static_cast<uint64_t*>(dma_alloc(sizeof(uint64_t) * size, 8));
  chain_len_ = static_cast<uint16_t*>(dma_alloc(sizeof(uint16_t) * size, 2));
  if (indirect) indirect_ = static_cast<Desc*>(dma_alloc(sizeof(Desc) * kMaxIndirect * size, 16));
  for (uint16_t i = 0; i < size; ++i) {
    desc_[i] = {0, 0, 0, static_cast<uint16_t>(i + 1)};
  }
  avail_[0] = avail_[1] = 0;
  avail_[2 + size] = 0;
  kicked_at_ = 0;
  free_head_ = 0;
  free_count_ = size;
  last_used_ = 0;
}

void Virtqueue::configure(bool event_idx, bool interrupts) {
  event_idx_ = event_idx;
  interrupts_ = interrupts;
  if (!interrupts) avail_[0] = kAvailNoInterrupt;  // ignored by the device under EVENT_IDX
  avail_[2 + size_] = interrupts ? last_used_ : static_cast<uint16_t>(last_used_ + 0x7fff);  // used_event
}

bool Virtqueue::kick_needed() {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);  // publish avail idx before reading the device's wish
  uint16_t now = avail_[1];
  bool needed;
  if (event_idx_) {
    uint16_t event = load16(reinterpret_cast<volatile uint16_t*>(used_ + 4 + 8u * size_));
    needed = static_cast<uint16_t>(now - event - 1) < static_cast<uint16_t>(now - kicked_at_);
  } else {
    needed = !(load16(reinterpret_cast<volatile uint16_t*>(used_)) & kUsedNoNotify);
  }
  kicked_at_ = now;
  return needed;
}

uint64_t Virtqueue::desc_addr() const { return phys(desc_); }
uint64_t Virtqueue::avail_addr() const { return phys(avail_); }
uint64_t Virtqueue::used_addr() const { return phys(used_); }

bool Virtqueue::add(const Segment* segs, int count, uint64_t token, bool indirect) {
  int slots = indirect ? 1 : count;
  if (count <= 0 || free_count_ < slots || (indirect && (!indirect_ || count > kMaxIndirect))) return false;
  uint16_t head = free_head_;
  if (indirect) {
    Desc* table = indirect_ + static_cast<uint64_t>(head) * kMaxIndirect;
    for (int i = 0; i < count; ++i)
      table[i] = {phys(segs[i].addr), segs[i].len,
                  static_cast<uint16_t>((segs[i].device_writes ? kWrite : 0) | (i + 1 < count ? kNext : 0)),
                  static_cast<uint16_t>(i + 1)};
    desc_[head].addr = phys(table);
    desc_[head].len = sizeof(Desc) * count;
    desc_[head].flags = kIndirect;
    free_head_ = desc_[head].next;
  } else {
    uint16_t at = head;
    for (int i = 0; i < count; ++i) {
      desc_[at].addr = phys(segs[i].addr);
      desc_[at].len = segs[i].len;
      desc_[at].flags = static_cast<uint16_t>((segs[i].device_writes ? kWrite : 0) | (i + 1 < count ? kNext : 0));
      if (i + 1 < count) at = desc_[at].next;
    }
    free_head_ = desc_[at].next;
  }
  free_count_ -= slots;
  tokens_[head] = token;
  chain_len_[head] = static_cast<uint16_t>(slots);
  uint16_t idx = avail_[1];
  avail_[2 + idx % size_] = head;
  __atomic_store_n(&avail_[1], static_cast<uint16_t>(idx + 1), __ATOMIC_RELEASE);
  return true;
}

bool Virtqueue::used_pending() const {
  return load16(reinterpret_cast<volatile uint16_t*>(used_ + 2)) != last_used_;
}

bool Virtqueue::pop(uint64_t* token, uint32_t* written) {
  auto* used_idx = reinterpret_cast<volatile uint16_t*>(used_ + 2);
  if (load16(used_idx) == last_used_) return false;
  const uint8_t* element = used_ + 4 + 8u * (last_used_ % size_);
  uint32_t id = *reinterpret_cast<const volatile uint32_t*>(element);
  *written = *reinterpret_cast<const volatile uint32_t*>(element + 4);
  ++last_used_;
  uint16_t head = static_cast<uint16_t>(id);
  *token = tokens_[head];
  // Return the chain to the free list.
  uint16_t at = head;
  for (uint16_t i = 1; i < chain_len_[head]; ++i) at = desc_[at].next;
  desc_[at].next = free_head_;
  free_head_ = head;
  free_count_ += chain_len_[head];
  // Under EVENT_IDX, used_event says when to interrupt: next time, or (polling) never.
  if (event_idx_) avail_[2 + size_] = interrupts_ ? last_used_ : static_cast<uint16_t>(last_used_ + 0x7fff);
  return true;
}

}  // namespace guest
