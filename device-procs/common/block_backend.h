// Block I/O on a disk image. On a memory-backed file system (tmpfs, ramfs, hugetlbfs) a read
// or write is a memory copy that cannot wait on a device, and io_uring would only hand it to
// a worker thread (two context switches each, measured): such I/O runs inline. Elsewhere,
// reads first try RWF_NOWAIT (page-cache hits complete inline) and everything else goes
// through io_uring: queued, submitted in batches, completed from the ring's eventfd.
// Callbacks may run before read()/write()/flush()/discard() return.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::device {

// io_uring operations run in kernel workers that seccomp never sees, so the ring itself is
// restricted: `ring` (created with IORING_SETUP_R_DISABLED) may only read, write, sync and
// punch holes in `file`, registered as fixed file kImageSlot, and accepts no registration
// but unregistering that file. Then it is enabled.
inline constexpr int kImageSlot = 0;
void restrict_ring_to_file(io_uring& ring, int file);

class BlockBackend {
 public:
  // Completion with the result: bytes transferred (all of them) or -errno.
  using Done = std::function<void(int64_t result)>;

  BlockBackend(UniqueFd image, uint64_t size, unsigned depth = 256);
  ~BlockBackend();
  BlockBackend(const BlockBackend&) = delete;
  BlockBackend& operator=(const BlockBackend&) = delete;

  uint64_t size() const { return size_; }
  bool memory_backed() const { return memory_backed_; }
  // Readable once completions are waiting; call complete() then.
  int completion_fd() const { return event_.get(); }

  void read(uint64_t offset, std::vector<iovec> iov, Done done);
  // `fua`: durable when it completes (RWF_DSYNC).
  void write(uint64_t offset, std::vector<iovec> iov, bool fua, Done done);
  // Starts only after every earlier request completed (IOSQE_IO_DRAIN): a flush never
  // overtakes a write it must cover.
  void flush(Done done);
  // Deallocates [offset, offset+length); reads return zeros afterwards. Falls back to
  // writing zeros where the file system cannot punch holes.
  void discard(uint64_t offset, uint64_t length, Done done);

  // Hands queued requests to the kernel.
  void submit();
  // Runs the callbacks of finished requests; returns how many finished. complete() also
  // resets the completion eventfd; reap() only looks at the ring (no system call).
  size_t complete();
  size_t reap();
  unsigned in_flight() const { return in_flight_; }
  // Blocks until every request finished (callbacks run).
  void wait_all();

 private:
  struct Op;
  void queue(std::unique_ptr<Op> op);
  bool prepare(Op* op);
  // A request (from the ring, or one that was partly done inline) transferred `res`.
  void finished(Op* op, int res, bool from_ring);
  void zero_fill(uint64_t offset, uint64_t length, Done done);

  UniqueFd image_;
  uint64_t size_;
  io_uring ring_{};
  UniqueFd event_;
  unsigned depth_;
  unsigned in_flight_ = 0;
  unsigned unsubmitted_ = 0;
  std::deque<std::unique_ptr<Op>> waiting_;  // no submission slot yet
  bool punch_supported_ = true;
  bool memory_backed_ = false;
};

}  // namespace bulkhead::device
