// What the 82540EM does to a frame before it leaves: the checksums and the TCP segmentation
// (TSO) its transmit descriptors ask for, done in software so that every host end (user-mode
// networking, which wants whole frames, as well as a tap) gets finished frames. Every offset
// comes from the guest and is checked against the frame; an offset that does not fit makes
// the request invalid and the frame is dropped, never patched out of bounds.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

namespace bulkhead::device::e1000 {

// A context descriptor's offload state. `ip_end` and `l4_end` are inclusive; 0 means the end
// of the frame.
struct OffloadContext {
  uint32_t ip_start = 0, ip_offset = 0, ip_end = 0;
  uint32_t l4_start = 0, l4_offset = 0, l4_end = 0;
  uint32_t header_length = 0, mss = 0;
  bool tcp = false, ipv4 = false;
};

// Stores the ones'-complement checksum of frame[start..end] (inclusive; end 0: to the end) at
// frame[offset]. The sum includes what the field holds (the partial pseudo-header sum a
// driver leaves there). False if the offsets do not fit the frame.
bool insert_checksum(std::span<uint8_t> frame, uint32_t start, uint32_t offset, uint32_t end);

// The smallest segment size accepted: it bounds a TSO packet to about a thousand segments.
inline constexpr uint32_t kMinMss = 64;

// Splits `packet` (the header, then the payload) into frames of header_length + mss bytes at
// most, each with its IP length and identification, TCP sequence number and flags (or UDP
// length) and, as `ip_checksum` and `l4_checksum` say, its checksums fixed; calls `emit` for
// each. False (and nothing emitted) if the context does not fit the packet.
bool segment(const OffloadContext& context, bool ip_checksum, bool l4_checksum, std::span<const uint8_t> packet,
             const std::function<void(std::span<uint8_t>)>& emit);

}  // namespace bulkhead::device::e1000
