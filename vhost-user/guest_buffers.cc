#include "vhost-user/guest_buffers.h"

#include <algorithm>
#include <cstring>

namespace bulkhead::vhost_user {

GuestBuffers::GuestBuffers(std::vector<HostRange> ranges) : ranges_(std::move(ranges)) {
  for (const HostRange& r : ranges_) size_ += r.size;
}

size_t GuestBuffers::read(uint64_t offset, void* out, size_t n) const {
  auto* dst = static_cast<uint8_t*>(out);
  size_t done = 0;
  for (const HostRange& r : ranges_) {
    if (done == n) break;
    if (offset >= r.size) {
      offset -= r.size;
      continue;
    }
    size_t piece = std::min<uint64_t>(n - done, r.size - offset);
    std::memcpy(dst + done, r.data + offset, piece);
    done += piece;
    offset = 0;
  }
  return done;
}

size_t GuestBuffers::write(uint64_t offset, const void* in, size_t n) {
  auto* src = static_cast<const uint8_t*>(in);
  size_t done = 0;
  for (const HostRange& r : ranges_) {
    if (done == n) break;
    if (offset >= r.size) {
      offset -= r.size;
      continue;
    }
    size_t piece = std::min<uint64_t>(n - done, r.size - offset);
    std::memcpy(r.data + offset, src + done, piece);
    done += piece;
    offset = 0;
  }
  return done;
}

GuestBuffers GuestBuffers::slice(uint64_t offset, uint64_t length) const {
  std::vector<HostRange> out;
  for (const HostRange& r : ranges_) {
    if (length == 0) break;
    if (offset >= r.size) {
      offset -= r.size;
      continue;
    }
    uint64_t piece = std::min(length, r.size - offset);
    out.push_back({r.data + offset, piece});
    length -= piece;
    offset = 0;
  }
  return GuestBuffers(std::move(out));
}

std::vector<iovec> GuestBuffers::iovecs() const {
  std::vector<iovec> v;
  v.reserve(ranges_.size());
  for (const HostRange& r : ranges_) v.push_back({r.data, r.size});
  return v;
}

}  // namespace bulkhead::vhost_user
