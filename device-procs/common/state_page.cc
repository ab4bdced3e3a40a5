#include "device-procs/common/state_page.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <cstring>

#include "common/error.h"

namespace bulkhead::device {

namespace {
constexpr uint32_t kMagic = 0x42485354;  // "BHST": a snapshot was committed
constexpr size_t kAlign = 64;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

// std::atomic<uint32_t> is lock-free and address-free: it works across the processes that
// map the page one after the other.
struct StatePage::Header {
  std::atomic<uint32_t> magic;
  std::atomic<uint32_t> current;  // the copy that is whole: 0 or 1
  uint32_t snapshot_size;
  uint32_t reserved;
};

struct StatePage::Copy {
  uint32_t applied;
  uint32_t reserved;
  uint8_t snapshot[];  // snapshot_size bytes
};

size_t StatePage::bytes(size_t snapshot_size, size_t bulk_size) {
  return aligned(sizeof(Header)) + 2 * aligned(sizeof(Copy) + snapshot_size) + bulk_size;
}

StatePage::StatePage(UniqueFd memfd, size_t snapshot_size, size_t bulk_size)
    : memfd_(std::move(memfd)), snapshot_size_(snapshot_size), bulk_size_(bulk_size) {
  struct stat st;
  // fstat on the descriptor the core handed us, to check it is as large as the layout.
  if (::fstat(memfd_.get(), &st) != 0) throw_errno("fstat of the state page");
  size_t size = bytes(snapshot_size, bulk_size);
  if (static_cast<size_t>(st.st_size) < size) throw InputError("the state page is smaller than the device's state");
  mapping_ = Mapping::map(memfd_.get(), size, PROT_READ | PROT_WRITE);
  // A zeroed page (fresh from the core) or one an earlier process of this device laid out;
  // the header holds only lock-free atomics and plain integers.
  header_ = reinterpret_cast<Header*>(mapping_.data());
  bulk_ = static_cast<uint8_t*>(mapping_.data()) + size - bulk_size;
  if (header_->magic.load(std::memory_order_acquire) == kMagic &&
      (header_->snapshot_size != snapshot_size || header_->current.load(std::memory_order_relaxed) > 1))
    throw InputError("the state page holds a state of another layout");
  applied_ = applied();  // commits before the next batch still include what the last one did
}

StatePage::Copy* StatePage::copy(uint32_t index) const {
  uint8_t* base = static_cast<uint8_t*>(mapping_.data()) + aligned(sizeof(Header));
  // Inside the mapping: index is 0 or 1, and bytes() counted both copies.
  return reinterpret_cast<Copy*>(base + index * aligned(sizeof(Copy) + snapshot_size_));
}

std::span<const uint8_t> StatePage::committed() const {
  if (header_->magic.load(std::memory_order_acquire) != kMagic) return {};
  return {copy(header_->current.load(std::memory_order_acquire))->snapshot, snapshot_size_};
}

uint32_t StatePage::applied() const {
  if (header_->magic.load(std::memory_order_acquire) != kMagic) return 0;
  return copy(header_->current.load(std::memory_order_acquire))->applied;
}

void StatePage::commit(std::span<const uint8_t> snapshot) {
  if (snapshot.size() != snapshot_size_) throw std::logic_error("snapshot of the wrong size");
  bool first = header_->magic.load(std::memory_order_relaxed) != kMagic;
  uint32_t next = first ? 0 : header_->current.load(std::memory_order_relaxed) ^ 1;
  Copy* c = copy(next);
  c->applied = applied_;
  std::memcpy(c->snapshot, snapshot.data(), snapshot.size());
  // Release: the copy is whole before it becomes the committed one.
  header_->current.store(next, std::memory_order_release);
  if (first) {
    header_->snapshot_size = static_cast<uint32_t>(snapshot_size_);
    header_->magic.store(kMagic, std::memory_order_release);
  }
}

}  // namespace bulkhead::device
