// A request's guest buffers as one byte sequence: headers and payloads may be split across
// descriptors anywhere (the guest decides), so devices address them by offset.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <vector>

#include "vhost-user/memory_map.h"

namespace bulkhead::vhost_user {

class GuestBuffers {
 public:
  GuestBuffers() = default;
  explicit GuestBuffers(std::vector<HostRange> ranges);

  uint64_t size() const { return size_; }
  // Copies up to `n` bytes at `offset` out of / into the buffers; returns the bytes copied.
  size_t read(uint64_t offset, void* out, size_t n) const;
  size_t write(uint64_t offset, const void* in, size_t n);
  // The part of the buffers from `offset` on (`length` bytes at most).
  GuestBuffers slice(uint64_t offset, uint64_t length = ~0ull) const;
  // iovecs covering the whole sequence, for readv/writev.
  std::vector<iovec> iovecs() const;
  size_t segments() const { return ranges_.size(); }

 private:
  // Calls f(data, length, done) for each piece of the `length` bytes at `offset`, in order;
  // `done` counts the bytes before the piece. Returns the bytes covered.
  template <typename F>
  uint64_t for_each_piece(uint64_t offset, uint64_t length, F f) const;

  std::vector<HostRange> ranges_;
  uint64_t size_ = 0;
};

}  // namespace bulkhead::vhost_user
