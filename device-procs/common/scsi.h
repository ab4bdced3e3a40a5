// SCSI constants and results shared by the disk emulation and the virtio-scsi transport.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace bulkhead::device::scsi {

namespace opcode {
inline constexpr uint8_t kTestUnitReady = 0x00, kRequestSense = 0x03, kRead6 = 0x08, kWrite6 = 0x0a,
                         kInquiry = 0x12, kModeSelect6 = 0x15, kModeSense6 = 0x1a, kStartStopUnit = 0x1b,
                         kAllowMediumRemoval = 0x1e, kReadCapacity10 = 0x25, kRead10 = 0x28, kWrite10 = 0x2a,
                         kSynchronizeCache10 = 0x35, kWriteSame10 = 0x41, kUnmap = 0x42, kModeSelect10 = 0x55,
                         kModeSense10 = 0x5a, kRead16 = 0x88, kWrite16 = 0x8a, kSynchronizeCache16 = 0x91,
                         kWriteSame16 = 0x93, kServiceActionIn16 = 0x9e, kReportLuns = 0xa0;
inline constexpr uint8_t kReadCapacity16ServiceAction = 0x10;
}  // namespace opcode

inline constexpr uint8_t kStatusGood = 0x00;
inline constexpr uint8_t kStatusCheckCondition = 0x02;

struct Sense {
  uint8_t key, asc, ascq;
};
namespace sense {
inline constexpr Sense kNone{0x00, 0x00, 0x00};
inline constexpr Sense kInvalidOpcode{0x05, 0x20, 0x00};
inline constexpr Sense kLbaOutOfRange{0x05, 0x21, 0x00};
inline constexpr Sense kInvalidFieldInCdb{0x05, 0x24, 0x00};
inline constexpr Sense kLunNotSupported{0x05, 0x25, 0x00};
inline constexpr Sense kInvalidFieldInParameterList{0x05, 0x26, 0x00};
inline constexpr Sense kParameterListLengthError{0x05, 0x1a, 0x00};
inline constexpr Sense kSavingParametersNotSupported{0x05, 0x39, 0x00};
inline constexpr Sense kWriteProtected{0x07, 0x27, 0x00};
inline constexpr Sense kSpaceAllocationFailed{0x07, 0x27, 0x07};
inline constexpr Sense kUnrecoveredReadError{0x03, 0x11, 0x00};
inline constexpr Sense kWriteError{0x03, 0x0c, 0x00};
inline constexpr Sense kResetOccurred{0x06, 0x29, 0x03};  // bus device reset function occurred
}  // namespace sense

// Fixed-format sense data (response code 0x70), 18 bytes.
inline std::array<uint8_t, 18> fixed_sense(Sense s) {
  std::array<uint8_t, 18> b{};
  b[0] = 0x70;
  b[2] = s.key;
  b[7] = 10;  // additional sense length
  b[12] = s.asc;
  b[13] = s.ascq;
  return b;
}

// Big-endian fields of CDBs and of the data SCSI returns.
inline uint16_t be16(std::span<const uint8_t> p, size_t at) { return static_cast<uint16_t>(p[at] << 8 | p[at + 1]); }
inline uint32_t be32(std::span<const uint8_t> p, size_t at) {
  return static_cast<uint32_t>(p[at]) << 24 | static_cast<uint32_t>(p[at + 1]) << 16 | static_cast<uint32_t>(p[at + 2]) << 8 |
         p[at + 3];
}
inline uint64_t be64(std::span<const uint8_t> p, size_t at) { return static_cast<uint64_t>(be32(p, at)) << 32 | be32(p, at + 4); }
inline void put_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void put_be32(uint8_t* p, uint32_t v) {
  put_be16(p, static_cast<uint16_t>(v >> 16));
  put_be16(p + 2, static_cast<uint16_t>(v));
}
inline void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, static_cast<uint32_t>(v >> 32));
  put_be32(p + 4, static_cast<uint32_t>(v));
}

// How a command ended.
struct Result {
  uint8_t status = kStatusGood;
  Sense sense = sense::kNone;
  uint64_t data_in = 0;   // bytes written into the data-in buffers
  bool overrun = false;   // the buffers do not match what the CDB asks for

  static Result good(uint64_t data_in = 0) { return {kStatusGood, sense::kNone, data_in, false}; }
  static Result check(Sense s) { return {kStatusCheckCondition, s, 0, false}; }
  static Result buffer_mismatch() { return {kStatusGood, sense::kNone, 0, true}; }
};

}  // namespace bulkhead::device::scsi
