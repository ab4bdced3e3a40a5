#include "vhost-user/guest_buffers.h"

#include <algorithm>
#include <cstring>

namespace bulkhead::vhost_user {

GuestBuffers::GuestBuffers(std::vector<HostRange> ranges) : ranges_(std::move(ranges)) {
  for (const HostRange& r : ranges_) size_ += r.size;
}

template <typename F>
uint64_t GuestBuffers::for_each_piece(uint64_t offset, uint64_t length, F f) const {
  uint64_t done = 0;
  for (const HostRange& r : ranges_) {
    if (done == length) break;
    if (offset >= r.size) {
      offset -= r.size;
      continue;
    }
    uint64_t piece = std::min(length - done, r.size - offset);
    f(r.data + offset, piece, done);
    done += piece;
    offset = 0;
  }
  return done;
}

size_t GuestBuffers::read(uint64_t offset, void* out, size_t n) const {
  auto* dst = static_cast<uint8_t*>(out);
  return for_each_piece(offset, n, [dst](const uint8_t* data, uint64_t piece, uint64_t done) {
    std::memcpy(dst + done, data, piece);
  });
}

size_t GuestBuffers::write(uint64_t offset, const void* in, size_t n) {
  auto* src = static_cast<const uint8_t*>(in);
  return for_each_piece(offset, n, [src](uint8_t* data, uint64_t piece, uint64_t done) {
    std::memcpy(data, src + done, piece);
  });
}

GuestBuffers GuestBuffers::slice(uint64_t offset, uint64_t length) const {
  std::vector<HostRange> out;
  for_each_piece(offset, length, [&out](uint8_t* data, uint64_t piece, uint64_t) { out.push_back({data, piece}); });
  return GuestBuffers(std::move(out));
}

std::vector<iovec> GuestBuffers::iovecs() const {
  std::vector<iovec> v;
  v.reserve(ranges_.size());
  for (const HostRange& r : ranges_) v.push_back({r.data, r.size});
  return v;
}

}  // namespace bulkhead::vhost_user
