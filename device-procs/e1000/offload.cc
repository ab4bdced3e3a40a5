#include "device-procs/e1000/offload.h"

#include <cstring>
#include <vector>

namespace bulkhead::device::e1000 {

namespace {

constexpr uint8_t kTcpFin = 0x01, kTcpPsh = 0x08;
constexpr uint32_t kIpv4Header = 20, kIpv6Header = 40, kTcpHeader = 20, kUdpHeader = 8;

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}
uint16_t fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void put16(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t be32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }
void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16);
  put16(p + 2, v);
}

}  // namespace

bool insert_checksum(std::span<uint8_t> frame, uint32_t start, uint32_t offset, uint32_t end) {
  size_t size = frame.size();
  if (start >= size || offset + 2 > size) return false;
  size_t last = (end == 0 || end >= size) ? size - 1 : end;
  if (last < start) return false;
  uint16_t sum = static_cast<uint16_t>(~fold(sum16(frame.data() + start, last - start + 1)));
  put16(frame.data() + offset, sum);
  return true;
}

bool segment(const OffloadContext& c, bool ip_checksum, bool l4_checksum, std::span<const uint8_t> packet,
             const std::function<void(std::span<uint8_t>)>& emit) {
  const uint32_t header = c.header_length;
  const uint32_t l4_header = c.tcp ? kTcpHeader : kUdpHeader;
  // The header must hold every field this patches.
  if (c.mss < kMinMss || header > packet.size() || c.l4_start + l4_header > header ||
      c.ip_start + (c.ipv4 ? kIpv4Header : kIpv6Header) > c.l4_start || c.l4_offset + 2 > header ||
      (ip_checksum && c.ipv4 && (c.ip_offset + 2 > header || (c.ip_end != 0 && c.ip_end >= header))))
    return false;
  const uint32_t payload = static_cast<uint32_t>(packet.size() - header);
  const uint8_t* ip = packet.data() + c.ip_start;
  const uint16_t first_id = be16(ip + 4);
  const uint32_t first_seq = c.tcp ? be32(packet.data() + c.l4_start + 4) : 0;
  const uint16_t partial = be16(packet.data() + c.l4_offset);  // the pseudo-header sum, without a length
  std::vector<uint8_t> frame(header + std::min(payload, c.mss));
  uint32_t index = 0;
  for (uint32_t at = 0; at < payload || (payload == 0 && index == 0); at += c.mss, ++index) {
    uint32_t length = std::min(c.mss, payload - at);
    bool last = at + length >= payload;
    frame.resize(header + length);
    std::memcpy(frame.data(), packet.data(), header);
    std::memcpy(frame.data() + header, packet.data() + header + at, length);
    uint8_t* fip = frame.data() + c.ip_start;
    uint8_t* l4 = frame.data() + c.l4_start;
    uint32_t size = static_cast<uint32_t>(frame.size());
    if (c.ipv4) {
      put16(fip + 2, size - c.ip_start);
      put16(fip + 4, static_cast<uint16_t>(first_id + index));
    } else {
      put16(fip + 4, size - c.ip_start - kIpv6Header);
    }
    if (c.tcp) {
      put32(l4 + 4, first_seq + at);
      if (!last) l4[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    } else {
      put16(l4 + 4, size - c.l4_start);
    }
    if (ip_checksum && c.ipv4) {
      put16(frame.data() + c.ip_offset, 0);
      insert_checksum(frame, c.ip_start, c.ip_offset, c.ip_end ? c.ip_end : c.l4_start - 1);
    }
    if (l4_checksum) {
      uint32_t l4_length = size - c.l4_start;
      put16(frame.data() + c.l4_offset, fold(uint64_t{partial} + l4_length));
      insert_checksum(frame, c.l4_start, c.l4_offset, 0);
    }
    emit(frame);
    if (payload == 0) break;
  }
  return true;
}

}  // namespace bulkhead::device::e1000
