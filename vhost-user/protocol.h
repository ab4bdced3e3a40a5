// vhost-user wire format, per QEMU's docs/interop/vhost-user.rst.
#pragma once

#include <cstddef>
#include <cstdint>

namespace bulkhead::vhost_user {

enum class Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};

inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// Feature bit that announces GET/SET_PROTOCOL_FEATURES.
inline constexpr uint64_t kFeatureProtocolFeatures = 1ull << 30;

namespace protocol_feature {
inline constexpr uint64_t kReplyAck = 1ull << 3;
}

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(Header) == 12);

// The largest payload either side accepts; the biggest standard payload is far smaller.
inline constexpr size_t kMaxPayload = 4096;

inline constexpr size_t kMaxMemoryRegions = 8;

struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};

struct MemoryTable {
  uint32_t nregions;
  uint32_t padding;
  MemoryRegion regions[kMaxMemoryRegions];
};
static_assert(sizeof(MemoryRegion) == 32);

}  // namespace bulkhead::vhost_user
