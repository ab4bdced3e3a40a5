// The shared-memory ring that carries register accesses from the core's vCPU threads to a
// legacy device process. Writes are posted (no reply); reads wait for the device's answer.
// String port I/O (rep ins/outs, the ATA PIO data path) travels as one access whose items
// sit in a shared bulk buffer, not as one access per item.
// Both sides treat the shared page as untrusted: indices are validated, sizes are fixed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>

#include "common/mapping.h"
#include "common/unique_fd.h"

namespace bulkhead::legacy {

inline constexpr uint32_t kRingSlots = 64;
// KVM hands over at most a page of string I/O per exit.
inline constexpr uint32_t kBulkBytes = 4096;

enum class AccessKind : uint8_t { kWrite = 1, kRead = 2, kWriteString = 3, kReadString = 4 };

struct AccessSlot {
  uint8_t kind;    // AccessKind
  uint8_t region;  // register window index
  uint8_t size;    // 1, 2, 4 or 8 bytes (of each item, for strings)
  uint8_t reserved;
  uint32_t count;  // strings: items in the bulk buffer (count * size <= kBulkBytes)
  uint64_t offset;
  uint64_t data;   // value written, or the device's answer to a read
};

// Lives in a memfd shared by exactly two processes. std::atomic<uint32_t> is lock-free and
// address-free, so it works across processes at different mapping addresses.
struct RingLayout {
  alignas(64) std::atomic<uint32_t> head;               // next slot the core fills
  alignas(64) std::atomic<uint32_t> tail;               // next slot the device handles
  alignas(64) std::atomic<uint32_t> consumer_sleeping;  // device is about to block on kick
  alignas(64) std::atomic<uint32_t> producer_waiting;   // core is about to block on notify
  alignas(64) AccessSlot slots[kRingSlots];
  alignas(64) uint8_t bulk[kBulkBytes];  // the items of the one string access in flight
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// The device stopped answering or hung up; the core treats it as gone.
class DeviceLost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The core's side. Thread-safe: vCPU threads share one producer per device.
class AccessRingProducer {
 public:
  AccessRingProducer();

  int memfd() const { return memfd_.get(); }
  int kick_fd() const { return kick_.get(); }
  int notify_fd() const { return notify_.get(); }
  // The device's socket (the ring keeps a duplicate): its hang-up ends any wait for the
  // device, unless the device is restartable.
  void set_peer_socket(int fd);
  // Crash recovery: when a restartable device's socket hangs up (its process died), waits
  // for it last until set_peer_socket() names the socket of the process that replaces it
  // (which resumes the ring where the dead one committed), or abandon() ends them.
  void set_restartable(bool restartable) { restartable_ = restartable; }
  bool restartable() const { return restartable_; }
  // Every wait ends, and every access from now on fails, with DeviceLost(why) until the next
  // set_peer_socket(): the device failed for good, or the VM is stopping.
  void abandon(const std::string& why);
  bool abandoned() const { return abandoned_.load(std::memory_order_acquire); }
  // Whether the socket hung up because a wait for the device timed out (it was shut down here),
  // once.
  bool take_timed_out() { return timed_out_.exchange(false); }

  void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value);
  uint64_t read(uint8_t region, uint64_t offset, uint8_t size);
  // `count` items of `size` bytes at one register (posted, like write), or into `items`.
  void write_string(uint8_t region, uint64_t offset, uint8_t size, uint32_t count, const uint8_t* items);
  void read_string(uint8_t region, uint64_t offset, uint8_t size, uint32_t count, uint8_t* items);

 private:
  uint32_t in_flight() const;
  uint32_t enqueue(AccessKind kind, uint8_t region, uint64_t offset, uint8_t size, uint64_t value, uint32_t count = 0);
  // Waits until the device is done with the bulk buffer's previous contents.
  void claim_bulk();
  template <typename Done>
  void wait_for_device(Done done);

  UniqueFd memfd_;
  Mapping mapping_;
  RingLayout* ring_;
  // Called with mutex_ held: installs the socket set_peer_socket() left, throws if abandoned.
  void check_peer();

  UniqueFd kick_;
  UniqueFd notify_;
  UniqueFd peer_changed_;  // eventfd: set_peer_socket() or abandon() happened
  bool restartable_ = false;
  std::atomic<bool> abandoned_{false};
  std::atomic<bool> peer_news_{false};  // check_peer() has something to do
  std::atomic<bool> timed_out_{false};
  std::mutex peer_mutex_;  // guards the two below, which other threads set
  std::optional<UniqueFd> next_peer_;
  std::string abandon_why_;
  std::mutex mutex_;
  // Only with mutex_ held, so that no thread polls a socket another one closes.
  UniqueFd peer_;
  bool peer_hung_up_ = false;
  uint32_t head_ = 0;  // our own copy; the shared one is never read back
  std::optional<uint32_t> bulk_user_;  // ring index of the last string access
};

// The device's side. Single-threaded.
class AccessRingConsumer {
 public:
  // A device process that resumes a dead one's state (crash recovery) starts at `resume_at`,
  // the accesses that state includes, instead of where the ring's tail says; throws
  // InputError if that is not between the tail and the head.
  AccessRingConsumer(UniqueFd memfd, UniqueFd kick, UniqueFd notify, std::optional<uint32_t> resume_at = std::nullopt);

  int kick_fd() const { return kick_.get(); }

  // Handles every queued access; `handle(slot, items)` returns the value for reads, and for
  // string accesses reads or fills `items` (the bulk buffer, already bounds-checked; empty
  // if the core asked for more than it holds). Accesses are handled in batches of at most a
  // ring's worth; before the core sees a batch done, `before_done(index)` runs with the ring
  // index after its last access. Returns how many were handled. Throws std::runtime_error if
  // the core corrupted the ring.
  template <typename Handler, typename BeforeDone>
  size_t drain(Handler&& handle, BeforeDone&& before_done) {
    size_t handled = 0;
    for (;;) {
      uint32_t head = ring_->head.load(std::memory_order_acquire);
      if (head == tail_) break;
      if (head - tail_ > kRingSlots) throw std::runtime_error("access ring indices corrupted");
      for (; tail_ != head; ++tail_, ++handled) {
        AccessSlot& slot = ring_->slots[tail_ % kRingSlots];
        uint64_t bytes = static_cast<uint64_t>(slot.count) * slot.size;
        std::span<uint8_t> items = bytes <= kBulkBytes ? std::span<uint8_t>(ring_->bulk, bytes) : std::span<uint8_t>();
        uint64_t value = handle(slot, items);
        if (slot.kind == static_cast<uint8_t>(AccessKind::kRead)) slot.data = value;
      }
      before_done(tail_);
      ring_->tail.store(tail_, std::memory_order_release);
      wake_producer();
    }
    return handled;
  }

  template <typename Handler>
  size_t drain(Handler&& handle) {
    return drain(handle, [](uint32_t) {});
  }

  bool pending() const { return ring_->head.load(std::memory_order_acquire) != tail_; }
  // Announces that the device will block on kick_fd(); returns false (and stays awake) if an
  // access arrived meanwhile.
  bool prepare_to_sleep();
  void woke_up();

 private:
  void wake_producer();

  UniqueFd memfd_;
  Mapping mapping_;
  RingLayout* ring_;
  UniqueFd kick_;
  UniqueFd notify_;
  uint32_t tail_;
};

// Size of the ring's memfd, a whole number of pages.
size_t ring_bytes();

}  // namespace bulkhead::legacy
