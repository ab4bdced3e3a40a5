// Crash recovery for a legacy device process (docs/recovery.md): the device keeps its state in
// a memfd that the core creates and hands to every process of the device, so that a process
// started after a crash resumes where the dead one left off.
//
// The page holds two copies of a fixed-size snapshot (the device's registers and the indices
// of its buffers) and a flag saying which copy is whole: commit() writes the other copy and
// then flips the flag, so a process killed in the middle of a commit leaves the previous one
// intact. Each snapshot records how many accesses of the access ring it includes: the next
// process starts serving the ring there, so an access is neither lost nor applied twice.
// Bulk data (a UART's output buffer) sits after the copies and is not copied on commit; the
// device only writes bulk bytes that no committed snapshot refers to.
//
// The page is written by one process of the device at a time: the supervisor starts the next
// one only after the last one died. Its contents are checked like any input.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/mapping.h"
#include "common/unique_fd.h"

namespace bulkhead::device {

class StatePage {
 public:
  // The size of a page for a snapshot of `snapshot_size` bytes and `bulk_size` bulk bytes (what
  // the device reports as its DeviceInfo::state_size).
  static size_t bytes(size_t snapshot_size, size_t bulk_size);

  // Maps `memfd`; throws InputError if it is smaller than bytes() or holds a snapshot of a
  // different size.
  StatePage(UniqueFd memfd, size_t snapshot_size, size_t bulk_size);

  // The last committed snapshot, or an empty span if nothing was committed (a fresh device).
  std::span<const uint8_t> committed() const;
  // How many ring accesses the committed snapshot includes.
  uint32_t applied() const;

  // The ring accesses the next commit includes.
  void set_applied(uint32_t applied) { applied_ = applied; }
  // Writes `snapshot` (snapshot_size bytes) and makes it the committed one.
  void commit(std::span<const uint8_t> snapshot);

  std::span<uint8_t> bulk() { return {bulk_, bulk_size_}; }

 private:
  struct Header;
  struct Copy;
  Copy* copy(uint32_t index) const;

  UniqueFd memfd_;
  Mapping mapping_;
  Header* header_;
  size_t snapshot_size_, bulk_size_;
  uint8_t* bulk_;
  uint32_t applied_ = 0;
};

}  // namespace bulkhead::device
