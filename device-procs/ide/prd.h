// The bus-master IDE engine's physical region descriptor (PRD) table: where in guest memory a
// DMA transfer goes. Each 8-byte entry holds an address, a byte count (0 means 64 KiB) and an
// end-of-table bit. Pure parsing, no device state: it is fuzzed on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace bulkhead::device {

struct PrdRegion {
  uint64_t address;
  uint32_t bytes;
};

struct PrdTable {
  enum class Status {
    kOk,            // the regions cover the transfer (the table may describe more)
    kShort,         // the table ends before the transfer does
    kUnreadable,    // the table itself is not in guest RAM
  } status = Status::kOk;
  std::vector<PrdRegion> regions;  // exactly the transfer's bytes when kOk
  bool longer = false;             // the table describes more than the transfer
};

// A table never holds more entries than fit in 64 KiB; a guest that ends none with EOT gets
// the table cut there (CVE-2014-9718: the walk always ends).
inline constexpr uint32_t kMaxPrdEntries = 65536 / 8;

// Reads guest memory [address, address+length) into `out`; false if it is not RAM.
using GuestRead = std::function<bool(uint64_t address, void* out, size_t length)>;

// The regions of the table at `table` that carry a transfer of `length` bytes.
PrdTable walk_prd_table(uint32_t table, uint64_t length, const GuestRead& read);

}  // namespace bulkhead::device
