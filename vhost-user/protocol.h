// vhost-user wire format, per QEMU's docs/interop/vhost-user.rst (QEMU 7.2 era), and the
// virtio feature bits both sides negotiate.
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
  kSetBackendReqFd = 21,
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

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(Header) == 12);

// The largest payload either side accepts; the biggest standard payload (GET_CONFIG with
// 256 bytes) is 268.
inline constexpr size_t kMaxPayload = 4096;
// libvhost-user and qemu-storage-daemon take at most 8 descriptors per message.
inline constexpr size_t kMaxFds = 8;
inline constexpr size_t kMaxMemoryRegions = 8;
inline constexpr uint32_t kMaxConfigSize = 256;
inline constexpr uint32_t kMaxMemSlots = 32;

struct VringState {
  uint32_t index;
  uint32_t num;
};

struct VringAddr {
  uint32_t index;
  uint32_t flags;
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

struct MemoryTable {
  uint32_t nregions;
  uint32_t padding;
  MemoryRegion regions[kMaxMemoryRegions];
};

struct SingleMemoryRegion {  // ADD_MEM_REG / REM_MEM_REG
  uint64_t padding;
  MemoryRegion region;
};
static_assert(sizeof(SingleMemoryRegion) == 40);

struct ConfigHeader {  // followed by `size` bytes of device config
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};

struct InflightDescription {
  uint64_t mmap_size;
  uint64_t mmap_offset;
  uint16_t num_queues;
  uint16_t queue_size;
  uint32_t padding;
};
static_assert(sizeof(InflightDescription) == 24);

// SET_VRING_KICK/CALL/ERR payload: queue index, and "no descriptor attached".
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ull << 8;

// Feature bits (virtio and vhost-user).
namespace feature {
inline constexpr uint64_t kNotifyOnEmpty = 1ull << 24;
inline constexpr uint64_t kIndirectDesc = 1ull << 28;
inline constexpr uint64_t kEventIdx = 1ull << 29;
inline constexpr uint64_t kProtocolFeatures = 1ull << 30;  // vhost-user: GET/SET_PROTOCOL_FEATURES exist
inline constexpr uint64_t kVersion1 = 1ull << 32;
inline constexpr uint64_t kAccessPlatform = 1ull << 33;
inline constexpr uint64_t kRingPacked = 1ull << 34;
}  // namespace feature

namespace protocol_feature {
inline constexpr uint64_t kMq = 1ull << 0;
inline constexpr uint64_t kLogShmfd = 1ull << 1;
inline constexpr uint64_t kReplyAck = 1ull << 3;
inline constexpr uint64_t kBackendReq = 1ull << 5;
inline constexpr uint64_t kConfig = 1ull << 9;
inline constexpr uint64_t kInflightShmfd = 1ull << 12;
inline constexpr uint64_t kResetDevice = 1ull << 13;
inline constexpr uint64_t kConfigureMemSlots = 1ull << 15;
inline constexpr uint64_t kStatus = 1ull << 16;
}  // namespace protocol_feature

// Virtio device status bits.
namespace status {
inline constexpr uint8_t kAcknowledge = 0x01;
inline constexpr uint8_t kDriver = 0x02;
inline constexpr uint8_t kDriverOk = 0x04;
inline constexpr uint8_t kFeaturesOk = 0x08;
inline constexpr uint8_t kNeedsReset = 0x40;
inline constexpr uint8_t kFailed = 0x80;
}  // namespace status

}  // namespace bulkhead::vhost_user
