// Asynchronous block I/O on a disk image with io_uring. Requests are queued, submitted in
// batches, and completed from the ring's eventfd in the device's event loop.
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

class BlockBackend {
 public:
  // Completion with the result: bytes transferred (all of them) or -errno.
  using Done = std::function<void(int64_t result)>;

  BlockBackend(UniqueFd image, uint64_t size, unsigned depth = 256);
  ~BlockBackend();
  BlockBackend(const BlockBackend&) = delete;
  BlockBackend& operator=(const BlockBackend&) = delete;

  uint64_t size() const { return size_; }
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
  // Runs the callbacks of finished requests; returns how many finished.
  size_t complete();
  unsigned in_flight() const { return in_flight_; }
  // Blocks until every request finished (callbacks run).
  void wait_all();

 private:
  struct Op;
  void queue(std::unique_ptr<Op> op);
  bool prepare(Op* op);
  void finished(Op* op, int res);
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
};

}  // namespace bulkhead::device
