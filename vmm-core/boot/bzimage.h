// Linux x86 boot protocol (Documentation/x86/boot.rst): bzImage, 64-bit entry.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm-core/boot/kernel_image.h"

namespace bulkhead::core {

struct BzImage {
  std::vector<uint8_t> setup_header;  // bytes 0x1f1 .. end of the header, as in the file
  uint64_t payload_offset;            // the protected-mode kernel in the file
  uint64_t payload_size;
  uint16_t version;
  uint64_t load_address;  // pref_address
  uint32_t init_size;     // memory the kernel needs from load_address while it boots
  uint32_t initrd_addr_max;
  uint32_t cmdline_size;
};

// Offsets into boot_params (the "zero page") and its embedded setup header.
namespace zero_page {
inline constexpr size_t kAcpiRsdpAddr = 0x070;
inline constexpr size_t kE820Entries = 0x1e8;
inline constexpr size_t kSetupHeader = 0x1f1;
inline constexpr size_t kTypeOfLoader = 0x210;
inline constexpr size_t kLoadFlags = 0x211;
inline constexpr size_t kCode32Start = 0x214;
inline constexpr size_t kRamdiskImage = 0x218;
inline constexpr size_t kRamdiskSize = 0x21c;
inline constexpr size_t kHeapEndPtr = 0x224;
inline constexpr size_t kCmdLinePtr = 0x228;
inline constexpr size_t kE820Table = 0x2d0;
inline constexpr size_t kE820MaxEntries = 128;
inline constexpr size_t kE820EntrySize = 20;
}  // namespace zero_page

}  // namespace bulkhead::core
