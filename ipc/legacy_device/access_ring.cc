#include "ipc/legacy_device/access_ring.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <new>

#include "common/error.h"
#include "ipc/legacy_device/sealed_memfd.h"

namespace bulkhead::legacy {

namespace {

// How long a vCPU spins for a read's answer before it blocks on the notify eventfd. A device
// that is polling answers within a few microseconds; one that sleeps needs a wake-up.
constexpr auto kProducerSpin = std::chrono::microseconds(100);
// A device that does not answer within this time (and has not hung up) is declared lost.
constexpr int kDeviceTimeoutMs = 10000;  // as for vhost-user replies (VhostUserPciBackend::kReplyTimeout)

void signal_eventfd(int fd) {
  uint64_t one = 1;
  // An eventfd write of 8 bytes from a local; it only fails if the counter would overflow,
  // which cannot happen before the reader drains it.
  [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
}

void drain_eventfd(int fd) {
  uint64_t count;
  // Non-blocking read into a local resets the counter; EAGAIN just means it was zero.
  [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
}

UniqueFd make_eventfd() {
  // A fresh non-blocking eventfd owned by the returned UniqueFd.
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) throw_errno("eventfd");
  return fd;
}

}  // namespace

size_t ring_bytes() {
  size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return (sizeof(RingLayout) + page - 1) / page * page;
}

AccessRingProducer::AccessRingProducer() {
  memfd_ = make_sealed_memfd("bulkhead-access-ring", ring_bytes(), "the access ring");
  mapping_ = Mapping::map(memfd_.get(), ring_bytes(), PROT_READ | PROT_WRITE);
  // Placement-new on a fresh zeroed shared page: RingLayout is standard-layout with
  // lock-free atomics, so this only starts the objects' lifetime.
  ring_ = new (mapping_.data()) RingLayout{};
  kick_ = make_eventfd();
  notify_ = make_eventfd();
  peer_changed_ = make_eventfd();
}

void AccessRingProducer::set_peer_socket(int fd) {
  // A duplicate of the caller's socket, ours to poll and to shut down.
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) throw_errno("duplicating a device socket");
  {
    std::lock_guard lock(peer_mutex_);
    next_peer_ = std::move(copy);
    abandoned_.store(false, std::memory_order_release);
    peer_news_.store(true, std::memory_order_release);
  }
  signal_eventfd(peer_changed_.get());
}

void AccessRingProducer::abandon(const std::string& why) {
  {
    std::lock_guard lock(peer_mutex_);
    abandon_why_ = why;
    abandoned_.store(true, std::memory_order_release);
    peer_news_.store(true, std::memory_order_release);
  }
  signal_eventfd(peer_changed_.get());
}

void AccessRingProducer::check_peer() {
  if (!peer_news_.load(std::memory_order_acquire)) return;
  std::lock_guard lock(peer_mutex_);
  if (abandoned_.load(std::memory_order_acquire)) throw DeviceLost(abandon_why_);
  peer_news_.store(false, std::memory_order_relaxed);
  if (!next_peer_) return;
  peer_ = std::move(*next_peer_);
  next_peer_.reset();
  peer_hung_up_ = false;
}

template <typename Done>
void AccessRingProducer::wait_for_device(Done done) {
  auto spin_until = std::chrono::steady_clock::now() + kProducerSpin;
  while (std::chrono::steady_clock::now() < spin_until) {
    if (done()) return;
    __builtin_ia32_pause();
  }
  struct NotWaiting {
    RingLayout* ring;
    ~NotWaiting() { ring->producer_waiting.store(0, std::memory_order_relaxed); }
  } not_waiting{ring_};
  for (;;) {
    ring_->producer_waiting.store(1, std::memory_order_seq_cst);
    if (done()) break;
    check_peer();
    // A restartable device that hung up is waited for without a time limit: its next process
    // (set_peer_socket) or the supervisor giving up (abandon) ends the wait.
    bool down = peer_hung_up_;
    pollfd fds[3] = {{notify_.get(), POLLIN, 0}, {peer_changed_.get(), POLLIN, 0}, {down ? -1 : peer_.get(), POLLRDHUP, 0}};
    // poll() on descriptors we hold; the socket entry is ignored while it is -1.
    int n = ::poll(fds, 3, down ? -1 : kDeviceTimeoutMs);
    if (n == 0) {
      std::string why = "device did not answer within " + std::to_string(kDeviceTimeoutMs / 1000) + " s";
      if (!restartable_ || !peer_) throw DeviceLost(why);
      // Treated like a crash: the core sees the hang-up, and the supervisor kills the process
      // and starts another.
      timed_out_ = true;
      ::shutdown(peer_.get(), SHUT_RDWR);  // our own duplicate of the device's socket
      peer_hung_up_ = true;
    }
    if (n > 0 && (fds[2].revents & (POLLRDHUP | POLLHUP | POLLERR))) {
      if (!restartable_) throw DeviceLost("device hung up");
      peer_hung_up_ = true;
    }
    drain_eventfd(notify_.get());
    drain_eventfd(peer_changed_.get());
  }
}

uint32_t AccessRingProducer::in_flight() const {
  uint32_t count = head_ - ring_->tail.load(std::memory_order_acquire);
  if (count > kRingSlots) throw DeviceLost("device corrupted the access ring");
  return count;
}

uint32_t AccessRingProducer::enqueue(AccessKind kind, uint8_t region, uint64_t offset, uint8_t size, uint64_t value,
                                     uint32_t count) {
  check_peer();
  auto has_room = [&] { return in_flight() < kRingSlots; };
  if (!has_room()) wait_for_device(has_room);
  AccessSlot& slot = ring_->slots[head_ % kRingSlots];
  slot.kind = static_cast<uint8_t>(kind);
  slot.region = region;
  slot.size = size;
  slot.count = count;
  slot.offset = offset;
  slot.data = value;
  uint32_t index = head_++;
  ring_->head.store(head_, std::memory_order_seq_cst);
  // Dekker-style pairing with prepare_to_sleep(): either we see the flag or it sees our head.
  if (ring_->consumer_sleeping.load(std::memory_order_seq_cst)) signal_eventfd(kick_.get());
  return index;
}

void AccessRingProducer::write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) {
  std::lock_guard lock(mutex_);
  enqueue(AccessKind::kWrite, region, offset, size, value);
}

uint64_t AccessRingProducer::read(uint8_t region, uint64_t offset, uint8_t size) {
  std::lock_guard lock(mutex_);
  uint32_t index = enqueue(AccessKind::kRead, region, offset, size, 0);
  // The mutex keeps other accesses out, so the ring is empty exactly when ours is answered.
  wait_for_device([&] { return in_flight() == 0; });
  return ring_->slots[index % kRingSlots].data;
}

void AccessRingProducer::claim_bulk() {
  if (!bulk_user_) return;
  uint32_t user = *bulk_user_;
  // Consumed once the device's tail has moved past it (indices wrap: compare the distance).
  wait_for_device([&] { return in_flight() <= head_ - user - 1; });
  bulk_user_.reset();
}

void AccessRingProducer::write_string(uint8_t region, uint64_t offset, uint8_t size, uint32_t count,
                                      const uint8_t* items) {
  std::lock_guard lock(mutex_);
  if (static_cast<uint64_t>(count) * size > kBulkBytes) throw std::invalid_argument("string access too long");
  claim_bulk();
  std::memcpy(ring_->bulk, items, static_cast<size_t>(count) * size);
  bulk_user_ = enqueue(AccessKind::kWriteString, region, offset, size, 0, count);
}

void AccessRingProducer::read_string(uint8_t region, uint64_t offset, uint8_t size, uint32_t count, uint8_t* items) {
  std::lock_guard lock(mutex_);
  if (static_cast<uint64_t>(count) * size > kBulkBytes) throw std::invalid_argument("string access too long");
  claim_bulk();
  enqueue(AccessKind::kReadString, region, offset, size, 0, count);
  wait_for_device([&] { return in_flight() == 0; });
  std::memcpy(items, ring_->bulk, static_cast<size_t>(count) * size);
}

AccessRingConsumer::AccessRingConsumer(UniqueFd memfd, UniqueFd kick, UniqueFd notify, std::optional<uint32_t> resume_at)
    : memfd_(std::move(memfd)), kick_(std::move(kick)), notify_(std::move(notify)) {
  struct stat st;
  // fstat on a descriptor we were handed, to check it really is as large as the ring.
  if (::fstat(memfd_.get(), &st) != 0) throw_errno("fstat of the access ring");
  if (static_cast<size_t>(st.st_size) < ring_bytes()) throw InputError("access ring memfd is too small");
  int seals = ::fcntl(memfd_.get(), F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) throw InputError("access ring memfd is not sealed against shrinking");
  mapping_ = Mapping::map(memfd_.get(), ring_bytes(), PROT_READ | PROT_WRITE);
  // The producer constructed the RingLayout in this shared page; we only access its
  // lock-free atomics and plain slots.
  ring_ = reinterpret_cast<RingLayout*>(mapping_.data());
  tail_ = ring_->tail.load(std::memory_order_acquire);
  if (resume_at) {
    // The dead process handled up to *resume_at and committed that, but may have died before
    // it moved the shared tail; it never handled an access the core had not queued.
    uint32_t head = ring_->head.load(std::memory_order_acquire);
    if (*resume_at - tail_ > kRingSlots || head - *resume_at > kRingSlots)
      throw InputError("the saved state and the access ring disagree about the accesses handled");
    tail_ = *resume_at;
    ring_->tail.store(tail_, std::memory_order_release);
    wake_producer();
  }
  // A process that died asleep left its flag up; the kicks it asks for would only be spurious.
  ring_->consumer_sleeping.store(0, std::memory_order_relaxed);
}

bool AccessRingConsumer::prepare_to_sleep() {
  ring_->consumer_sleeping.store(1, std::memory_order_seq_cst);
  if (pending()) {
    ring_->consumer_sleeping.store(0, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void AccessRingConsumer::woke_up() {
  ring_->consumer_sleeping.store(0, std::memory_order_relaxed);
  drain_eventfd(kick_.get());
}

void AccessRingConsumer::wake_producer() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (ring_->producer_waiting.load(std::memory_order_seq_cst)) signal_eventfd(notify_.get());
}

}  // namespace bulkhead::legacy
