// ATA/ATAPI constants: task-file registers, status and error bits, command opcodes.
#pragma once

#include <cstdint>

namespace bulkhead::device::ata {

// Command block registers (offsets from 0x1f0 / 0x170).
enum Register : uint8_t {
  kData = 0,
  kErrorFeature = 1,
  kSectorCount = 2,  // ATAPI: interrupt reason
  kLbaLow = 3,
  kLbaMid = 4,       // ATAPI: byte count, low
  kLbaHigh = 5,      // ATAPI: byte count, high
  kDevice = 6,
  kStatusCommand = 7,
};

namespace status {
inline constexpr uint8_t kErr = 0x01, kDrq = 0x08, kDsc = 0x10, kDf = 0x20, kDrdy = 0x40, kBsy = 0x80;
}
namespace error {
inline constexpr uint8_t kAbrt = 0x04, kIdnf = 0x10, kUnc = 0x40;
inline constexpr uint8_t kDiagnosticPassed = 0x01;
}
namespace control {  // the device control register (0x3f6 / 0x376)
inline constexpr uint8_t kNien = 0x02, kSrst = 0x04, kHob = 0x80;
}
inline constexpr uint8_t kDeviceSlave = 0x10, kDeviceLba = 0x40;
// ATAPI interrupt reason (sector count register).
inline constexpr uint8_t kReasonCommand = 0x01, kReasonIn = 0x02;

namespace cmd {
inline constexpr uint8_t kNop = 0x00, kDeviceReset = 0x08, kRecalibrate = 0x10, kReadSectors = 0x20,
                         kReadSectorsNoRetry = 0x21, kReadSectorsExt = 0x24, kReadDmaExt = 0x25,
                         kReadNativeMaxExt = 0x27, kReadMultipleExt = 0x29, kWriteSectors = 0x30,
                         kWriteSectorsNoRetry = 0x31, kWriteSectorsExt = 0x34, kWriteDmaExt = 0x35,
                         kWriteMultipleExt = 0x39, kReadVerify = 0x40, kReadVerifyNoRetry = 0x41,
                         kReadVerifyExt = 0x42, kSeek = 0x70, kExecuteDiagnostic = 0x90, kInitializeParameters = 0x91,
                         kPacket = 0xa0, kIdentifyPacket = 0xa1, kReadMultiple = 0xc4, kWriteMultiple = 0xc5,
                         kSetMultiple = 0xc6, kReadDma = 0xc8, kReadDmaNoRetry = 0xc9, kWriteDma = 0xca,
                         kWriteDmaNoRetry = 0xcb, kStandbyImmediate = 0xe0, kIdleImmediate = 0xe1, kStandby = 0xe2,
                         kIdle = 0xe3, kCheckPowerMode = 0xe5, kSleep = 0xe6, kFlushCache = 0xe7,
                         kFlushCacheExt = 0xea, kIdentify = 0xec, kSetFeatures = 0xef, kReadNativeMax = 0xf8;
}
namespace feature {  // SET FEATURES subcommands
inline constexpr uint8_t kEnableWriteCache = 0x02, kSetTransferMode = 0x03, kDisableReadLookAhead = 0x55,
                         kDisableRevertToDefaults = 0x66, kDisableWriteCache = 0x82, kEnableReadLookAhead = 0xaa,
                         kEnableRevertToDefaults = 0xcc;
}

inline constexpr uint32_t kSectorSize = 512;
inline constexpr uint32_t kMaxMultiple = 16;  // sectors per DRQ block for READ/WRITE MULTIPLE

}  // namespace bulkhead::device::ata
