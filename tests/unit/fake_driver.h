// A virtio driver for tests: guest memory in a memfd, and split rings laid out in it the
// way a guest would, so the device-side code sees exactly what it sees in a VM.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"
#include "vhost-user/memory_map.h"
#include "vhost-user/virtqueue.h"

namespace bulkhead::test {

using vhost_user::Descriptor;

class GuestRam {
 public:
  static constexpr uint64_t kSize = 4 << 20;
  static constexpr uint64_t kUserspaceBase = 0x7f0000000000;  // the front-end's address for gpa 0

  GuestRam() : fd_(::memfd_create("guest-ram", MFD_CLOEXEC)) {
    if (!fd_ || ::ftruncate(fd_.get(), kSize) != 0) throw std::runtime_error("memfd");
    map_ = Mapping::map(fd_.get(), kSize, PROT_READ | PROT_WRITE);
  }
  uint8_t* at(uint64_t gpa) { return map_.data() + gpa; }
  int fd() const { return fd_.get(); }
  UniqueFd dup_fd() const { return UniqueFd(::dup(fd_.get())); }
  // The whole RAM as one region (or [start, start+size)).
  vhost_user::MemoryRegion region(uint64_t start = 0, uint64_t size = kSize) const {
    return {start, size, kUserspaceBase + start, start};
  }

 private:
  UniqueFd fd_;
  Mapping map_;
};

// Driver side of one split queue inside GuestRam.
class DriverQueue {
 public:
  DriverQueue(GuestRam& ram, uint16_t size, uint64_t base = 0x10000)
      : ram_(ram), size_(size), desc_(base), avail_(base + 16ull * size), used_((avail_ + 6 + 2ull * size + 3) & ~3ull) {}

  vhost_user::SplitQueue::Rings rings() { return {ram_.at(desc_), ram_.at(avail_), ram_.at(used_)}; }
  vhost_user::VringAddr addr(uint32_t index) const {
    return {index, 0, GuestRam::kUserspaceBase + desc_, GuestRam::kUserspaceBase + used_, GuestRam::kUserspaceBase + avail_, 0};
  }
  uint16_t size() const { return size_; }

  void set_desc(uint16_t i, Descriptor d) { std::memcpy(ram_.at(desc_ + 16ull * i), &d, sizeof d); }
  // Writes `d` entries starting at slot `first` and links them with NEXT; returns head.
  uint16_t add_chain(uint16_t first, std::vector<Descriptor> d) {
    for (size_t i = 0; i < d.size(); ++i) {
      if (i + 1 < d.size()) {
        d[i].flags |= vhost_user::kDescNext;
        d[i].next = static_cast<uint16_t>(first + i + 1);
      }
      set_desc(static_cast<uint16_t>(first + i), d[i]);
    }
    publish(first);
    return first;
  }
  void publish(uint16_t head) {
    uint16_t idx = avail_idx();
    std::memcpy(ram_.at(avail_ + 4 + 2ull * (idx % size_)), &head, 2);
    set_avail_idx(static_cast<uint16_t>(idx + 1));
  }
  uint16_t avail_idx() { return read16(avail_ + 2); }
  void set_avail_idx(uint16_t v) { write16(avail_ + 2, v); }
  void set_avail_flags(uint16_t v) { write16(avail_, v); }
  void set_used_event(uint16_t v) { write16(avail_ + 4 + 2ull * size_, v); }
  uint16_t used_idx() { return read16(used_ + 2); }
  void set_used_idx(uint16_t v) { write16(used_ + 2, v); }
  uint16_t avail_event() { return read16(used_ + 4 + 8ull * size_); }
  uint32_t used_id(uint16_t slot) {
    uint32_t v;
    std::memcpy(&v, ram_.at(used_ + 4 + 8ull * (slot % size_)), 4);
    return v;
  }
  uint32_t used_len(uint16_t slot) {
    uint32_t v;
    std::memcpy(&v, ram_.at(used_ + 8 + 8ull * (slot % size_)), 4);
    return v;
  }

 private:
  uint16_t read16(uint64_t gpa) {
    uint16_t v;
    std::memcpy(&v, ram_.at(gpa), 2);
    return v;
  }
  void write16(uint64_t gpa, uint16_t v) { std::memcpy(ram_.at(gpa), &v, 2); }
  GuestRam& ram_;
  uint16_t size_;
  uint64_t desc_, avail_, used_;
};

}  // namespace bulkhead::test
