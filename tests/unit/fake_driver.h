// A virtio driver for tests: guest memory in a memfd, and split rings laid out in it the
// way a guest would, so the device-side code sees exactly what it sees in a VM.
#pragma once

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/event_loop.h"
#include "common/mapping.h"
#include "common/unique_fd.h"
#include "vhost-user/backend.h"
#include "vhost-user/connection.h"
#include "vhost-user/memory_map.h"
#include "vhost-user/protocol.h"
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

// The front-end's side of a vhost-user connection to a back-end served by `loop` in the same
// thread: messages as QEMU 7.2 sends them, and guest RAM to lay rings in.
class FrontEnd {
 public:
  explicit FrontEnd(EventLoop& loop) : loop_(loop) {
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    front = std::make_unique<vhost_user::Connection>(UniqueFd(sv[0]));
    backend_end_.reset(sv[1]);
  }
  // The back-end's end of the connection, once.
  UniqueFd take_backend_socket() { return std::move(backend_end_); }

  void pump() {
    while (loop_.run_once(20) > 0) {
    }
  }
  void send(const vhost_user::Message& m, std::vector<int> fds = {}) {
    front->send(m, fds);
    pump();
  }
  vhost_user::Message call(const vhost_user::Message& m, std::vector<int> fds = {}) {
    send(m, fds);
    vhost_user::Message r;
    if (!front->receive(r)) throw std::runtime_error("no reply");
    return r;
  }
  template <typename T>
  static vhost_user::Message msg(vhost_user::Request r, const T& body, uint32_t flags = 0) {
    return vhost_user::Message::make(static_cast<uint32_t>(r), body, flags);
  }
  static vhost_user::Message empty(vhost_user::Request r) { return vhost_user::Message::make_empty(static_cast<uint32_t>(r)); }
  static UniqueFd eventfd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }
  static uint64_t read_counter(int fd) {
    uint64_t v = 0;
    return ::read(fd, &v, 8) == 8 ? v : 0;
  }
  static void kick(int fd) {
    uint64_t one = 1;
    if (::write(fd, &one, 8) != 8) throw std::runtime_error("kick");
  }
  // The QEMU 7.2 start sequence for one queue, after negotiation.
  void start_queue(DriverQueue& q, uint32_t index, int kick, int call_fd) {
    using vhost_user::Request;
    send(msg(Request::kSetVringNum, vhost_user::VringState{index, q.size()}));
    send(msg(Request::kSetVringBase, vhost_user::VringState{index, 0}));
    send(msg(Request::kSetVringAddr, q.addr(index)));
    send(msg(Request::kSetVringKick, uint64_t{index}), {kick});
    send(msg(Request::kSetVringCall, uint64_t{index}), {call_fd});
    send(msg(Request::kSetVringEnable, vhost_user::VringState{index, 1}));
  }
  void set_mem_table() {
    vhost_user::MemoryTable table{};
    table.nregions = 1;
    table.regions[0] = ram.region();
    vhost_user::Message m;
    m.header = {static_cast<uint32_t>(vhost_user::Request::kSetMemTable), vhost_user::kVersion, 0};
    m.payload.resize(8 + sizeof(vhost_user::MemoryRegion));
    std::memcpy(m.payload.data(), &table, m.payload.size());
    send(m, {ram.fd()});
  }
  void negotiate(uint64_t features) {
    using vhost_user::Request;
    send(empty(Request::kSetOwner));
    send(msg(Request::kSetProtocolFeatures, vhost_user::Backend::kProtocolFeatures));
    send(msg(Request::kSetFeatures, features | vhost_user::feature::kProtocolFeatures));
  }

  GuestRam ram;
  std::unique_ptr<vhost_user::Connection> front;

 private:
  EventLoop& loop_;
  UniqueFd backend_end_;
};

}  // namespace bulkhead::test
