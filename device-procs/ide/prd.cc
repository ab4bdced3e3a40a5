#include "device-procs/ide/prd.h"

#include <algorithm>
#include <cstring>

namespace bulkhead::device {

PrdTable walk_prd_table(uint32_t table, uint64_t length, const GuestRead& read) {
  PrdTable result;
  uint64_t left = length;
  table &= ~3u;  // the pointer's low bits are not decoded
  for (uint32_t i = 0; i < kMaxPrdEntries; ++i) {
    uint8_t entry[8];
    if (!read(static_cast<uint64_t>(table) + 8ull * i, entry, sizeof entry)) {
      result.status = PrdTable::Status::kUnreadable;
      return result;
    }
    uint32_t address, control;
    std::memcpy(&address, entry, 4);
    std::memcpy(&control, entry + 4, 4);
    uint32_t bytes = control & 0xfffe;
    if (bytes == 0) bytes = 0x10000;
    const bool last = control & 0x80000000u;
    uint32_t take = static_cast<uint32_t>(std::min<uint64_t>(bytes, left));
    if (take) result.regions.push_back({address & ~1u, take});
    left -= take;
    if (take < bytes || (left == 0 && !last)) result.longer = true;
    if (last || left == 0) break;
  }
  if (left) result.status = PrdTable::Status::kShort;
  return result;
}

}  // namespace bulkhead::device
