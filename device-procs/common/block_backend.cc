#include "device-procs/common/block_backend.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <sys/eventfd.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace bulkhead::device {

struct BlockBackend::Op {
  enum class Kind { kRead, kWrite, kFlush, kDiscard } kind;
  uint64_t offset = 0;
  uint64_t length = 0;  // discard
  std::vector<iovec> iov;
  bool fua = false;
  uint64_t expected = 0;
  uint64_t done_bytes = 0;
  Done done;
};

namespace {

// Transfers all of `iov` at `offset` synchronously (preadv2/pwritev2); bytes or -errno.
// With RWF_NOWAIT a partial result is returned as is.
int64_t transfer(int fd, bool write, std::vector<iovec> iov, uint64_t offset, int flags) {
  uint64_t done = 0;
  size_t first = 0;
  while (first < iov.size()) {
    // Vectored I/O on the image descriptor, into or out of guest memory the iovecs describe.
    ssize_t n = write ? ::pwritev2(fd, &iov[first], static_cast<int>(iov.size() - first), static_cast<off_t>(offset + done), flags)
                      : ::preadv2(fd, &iov[first], static_cast<int>(iov.size() - first), static_cast<off_t>(offset + done), flags);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return done ? static_cast<int64_t>(done) : -errno;
    if (n == 0) return done ? static_cast<int64_t>(done) : -EIO;
    done += static_cast<uint64_t>(n);
    if (flags & RWF_NOWAIT) return static_cast<int64_t>(done);
    for (size_t left = static_cast<size_t>(n); left;) {
      size_t take = std::min(left, iov[first].iov_len);
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + take;
      iov[first].iov_len -= take;
      left -= take;
      if (iov[first].iov_len == 0) ++first;
    }
  }
  return static_cast<int64_t>(done);
}

}  // namespace

BlockBackend::BlockBackend(UniqueFd image, uint64_t size, unsigned depth) : image_(std::move(image)), size_(size), depth_(depth) {
  struct statfs fs;
  // fstatfs on the image descriptor, to learn whether it lives in memory.
  if (::fstatfs(image_.get(), &fs) == 0)
    memory_backed_ = fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC || fs.f_type == HUGETLBFS_MAGIC;
  // The ring starts disabled so that it can be restricted before its first use.
  int r = io_uring_queue_init(depth, &ring_, IORING_SETUP_R_DISABLED);
  if (r < 0) throw SystemError(-r, "io_uring_queue_init");
  // An eventfd the kernel signals on each completion; owned by event_.
  event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_) throw_errno("eventfd");
  r = io_uring_register_eventfd(&ring_, event_.get());
  if (r < 0) throw SystemError(-r, "io_uring_register_eventfd");
  restrict_ring_to_file(ring_, image_.get());
}

void restrict_ring_to_file(io_uring& ring, int file) {
  int r = io_uring_register_files(&ring, &file, 1);
  if (r < 0) throw SystemError(-r, "io_uring_register_files");
  io_uring_restriction rules[7] = {};
  const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE};
  for (size_t i = 0; i < std::size(ops); ++i) {
    rules[i].opcode = IORING_RESTRICTION_SQE_OP;
    rules[i].sqe_op = ops[i];
  }
  rules[4].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
  rules[4].sqe_flags = IOSQE_FIXED_FILE;
  rules[5].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
  rules[5].sqe_flags = IOSQE_FIXED_FILE | IOSQE_IO_DRAIN;
  rules[6].opcode = IORING_RESTRICTION_REGISTER_OP;
  rules[6].register_op = IORING_UNREGISTER_FILES;
  // Raw io_uring_register on our own ring: Debian's liburing 2.3 declares
  // io_uring_register_restrictions and io_uring_enable_rings but does not export them.
  if (::syscall(SYS_io_uring_register, ring.ring_fd, IORING_REGISTER_RESTRICTIONS, rules, std::size(rules)) != 0)
    throw_errno("restricting the io_uring");
  if (::syscall(SYS_io_uring_register, ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) != 0)
    throw_errno("enabling the io_uring");
}

BlockBackend::~BlockBackend() {
  wait_all();
  // The ring's teardown finishes asynchronously after close; unregistering the image first
  // drops the ring's reference (and the image lock with it) before this process exits.
  io_uring_unregister_files(&ring_);
  io_uring_queue_exit(&ring_);
}

void BlockBackend::read(uint64_t offset, std::vector<iovec> iov, Done done) {
  uint64_t expected = 0;
  for (const iovec& v : iov) expected += v.iov_len;
  if (memory_backed_) return done(transfer(image_.get(), false, std::move(iov), offset, 0));
  // A page-cache hit completes here; a miss (EAGAIN) or a partial read goes to io_uring.
  int64_t now = transfer(image_.get(), false, iov, offset, RWF_NOWAIT);
  if (now == static_cast<int64_t>(expected)) return done(now);
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kRead;
  op->offset = offset;
  op->iov = std::move(iov);
  op->expected = expected;
  op->done = std::move(done);
  if (now > 0) finished(op.release(), static_cast<int>(now), false);  // continue after what was read
  else queue(std::move(op));
}

void BlockBackend::write(uint64_t offset, std::vector<iovec> iov, bool fua, Done done) {
  if (memory_backed_) return done(transfer(image_.get(), true, std::move(iov), offset, fua ? RWF_DSYNC : 0));
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kWrite;
  op->offset = offset;
  op->iov = std::move(iov);
  op->fua = fua;
  for (const iovec& v : op->iov) op->expected += v.iov_len;
  op->done = std::move(done);
  queue(std::move(op));
}

void BlockBackend::flush(Done done) {
  if (memory_backed_) {
    // Every earlier write already completed inline; fdatasync keeps the semantics anyway.
    return done(::fdatasync(image_.get()) == 0 ? 0 : -errno);
  }
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kFlush;
  op->done = std::move(done);
  queue(std::move(op));
}

void BlockBackend::discard(uint64_t offset, uint64_t length, Done done) {
  if (!punch_supported_) return zero_fill(offset, length, std::move(done));
  if (memory_backed_) {
    // Deallocating memory-backed pages cannot block on a device either.
    if (::fallocate(image_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0)
      return done(0);
    if (errno != EOPNOTSUPP) return done(-errno);
    punch_supported_ = false;
    return zero_fill(offset, length, std::move(done));
  }
  auto op = std::make_unique<Op>();
  op->kind = Op::Kind::kDiscard;
  op->offset = offset;
  op->length = length;
  op->done = std::move(done);
  queue(std::move(op));
}

void BlockBackend::zero_fill(uint64_t offset, uint64_t length, Done done) {
  // Shared zero page, written as many times as needed in one vectored write per 1 MiB.
  static const std::vector<uint8_t> zeros(64 * 1024, 0);
  struct State {
    uint64_t offset, left;
    Done done;
  };
  auto state = std::make_shared<State>(State{offset, length, std::move(done)});
  auto step = std::make_shared<std::function<void(int64_t)>>();
  *step = [this, state, step](int64_t result) {
    if (result < 0 || state->left == 0) {
      Done d = std::move(state->done);
      *step = nullptr;  // break the self-reference
      return d(result < 0 ? result : 0);
    }
    uint64_t chunk = std::min<uint64_t>(state->left, 1 << 20);
    std::vector<iovec> iov;
    for (uint64_t at = 0; at < chunk; at += zeros.size())
      iov.push_back({const_cast<uint8_t*>(zeros.data()), std::min<uint64_t>(zeros.size(), chunk - at)});
    uint64_t at = state->offset;
    state->offset += chunk;
    state->left -= chunk;
    write(at, std::move(iov), false, *step);
  };
  (*step)(0);
}

void BlockBackend::queue(std::unique_ptr<Op> op) {
  if (in_flight_ >= depth_ || !prepare(op.get())) {
    waiting_.push_back(std::move(op));
    return;
  }
  op.release();  // owned by the ring until its completion
}

bool BlockBackend::prepare(Op* op) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (!sqe) {
    submit();
    sqe = io_uring_get_sqe(&ring_);
    if (!sqe) return false;
  }
  switch (op->kind) {
    case Op::Kind::kRead:
      io_uring_prep_readv(sqe, kImageSlot, op->iov.data(), static_cast<unsigned>(op->iov.size()), op->offset);
      break;
    case Op::Kind::kWrite:
      io_uring_prep_writev2(sqe, kImageSlot, op->iov.data(), static_cast<unsigned>(op->iov.size()), op->offset,
                            op->fua ? RWF_DSYNC : 0);
      break;
    case Op::Kind::kFlush:
      io_uring_prep_fsync(sqe, kImageSlot, IORING_FSYNC_DATASYNC);
      sqe->flags |= IOSQE_IO_DRAIN;
      break;
    case Op::Kind::kDiscard:
      io_uring_prep_fallocate(sqe, kImageSlot, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, op->offset, op->length);
      break;
  }
  sqe->flags |= IOSQE_FIXED_FILE;  // the ring may touch nothing but the image (restrict_ring)
  io_uring_sqe_set_data(sqe, op);
  ++in_flight_;
  ++unsubmitted_;
  return true;
}

void BlockBackend::submit() {
  if (!unsubmitted_) return;
  int r = io_uring_submit(&ring_);
  if (r > 0) unsubmitted_ -= std::min<unsigned>(unsubmitted_, static_cast<unsigned>(r));
}

void BlockBackend::finished(Op* op, int res, bool from_ring) {
  std::unique_ptr<Op> owned(op);
  if (from_ring) --in_flight_;
  if ((op->kind == Op::Kind::kRead || op->kind == Op::Kind::kWrite) && res > 0 &&
      op->done_bytes + static_cast<uint64_t>(res) < op->expected) {
    // A short transfer: continue with the rest of the vector.
    op->done_bytes += static_cast<uint64_t>(res);
    op->offset += static_cast<uint64_t>(res);
    uint64_t skip = static_cast<uint64_t>(res);
    while (!op->iov.empty() && skip >= op->iov.front().iov_len) {
      skip -= op->iov.front().iov_len;
      op->iov.erase(op->iov.begin());
    }
    if (!op->iov.empty()) {
      op->iov.front().iov_base = static_cast<uint8_t*>(op->iov.front().iov_base) + skip;
      op->iov.front().iov_len -= skip;
    }
    return queue(std::move(owned));
  }
  if ((op->kind == Op::Kind::kRead || op->kind == Op::Kind::kWrite) && res == 0 && op->expected > op->done_bytes)
    res = -EIO;  // end of file inside the disk: the image shrank under us
  if (op->kind == Op::Kind::kDiscard && (res == -EOPNOTSUPP || res == -EINVAL)) {
    punch_supported_ = false;
    return zero_fill(op->offset, op->length, std::move(op->done));
  }
  int64_t result = res < 0 ? res : static_cast<int64_t>(op->done_bytes + static_cast<uint64_t>(res));
  op->done(result);
}

size_t BlockBackend::complete() {
  uint64_t count;
  // Reset the completion eventfd; EAGAIN (already reset) is fine.
  [[maybe_unused]] ssize_t n = ::read(event_.get(), &count, sizeof count);
  return reap();
}

size_t BlockBackend::reap() {
  size_t handled = 0;
  io_uring_cqe* cqe;
  while (io_uring_peek_cqe(&ring_, &cqe) == 0) {
    // user_data holds the Op pointer we attached in prepare().
    auto* op = static_cast<Op*>(io_uring_cqe_get_data(cqe));
    int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    finished(op, res, true);
    ++handled;
  }
  while (!waiting_.empty() && in_flight_ < depth_ && prepare(waiting_.front().get())) {
    waiting_.front().release();
    waiting_.pop_front();
  }
  submit();
  return handled;
}

void BlockBackend::wait_all() {
  while (in_flight_ > 0 || !waiting_.empty()) {
    submit();
    io_uring_cqe* cqe;
    int r = io_uring_wait_cqe(&ring_, &cqe);
    if (r < 0 && r != -EINTR) break;
    complete();
  }
}

}  // namespace bulkhead::device
