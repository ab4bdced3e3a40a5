// An interrupt line driven through a KVM irqfd.
//  - Edge-triggered (ISA): each rising edge of the device's output becomes one signal.
//  - Level-triggered (PCI INTx), with a resample eventfd: KVM keeps the line asserted from
//    a signal until the guest's EOI, then lowers it and signals the resample eventfd; if the
//    device's output is still high then, the line is signalled again, so an interrupt that
//    stays pending is never lost.
#pragma once

#include <sys/epoll.h>
#include <unistd.h>

#include "common/event_loop.h"
#include "common/unique_fd.h"

namespace bulkhead::device {

class IrqSink {
 public:
  virtual ~IrqSink() = default;
  virtual void set_level(bool high) = 0;
};

class IrqLine : public IrqSink {
 public:
  IrqLine() = default;
  IrqLine(const IrqLine&) = delete;
  IrqLine& operator=(const IrqLine&) = delete;
  ~IrqLine() override {
    if (loop_ && resample_) loop_->remove(resample_.get());
  }

  // `resample` (level lines only) is watched on `loop`.
  void attach(EventLoop& loop, UniqueFd trigger, UniqueFd resample = {}) {
    if (loop_ && resample_) loop_->remove(resample_.get());
    trigger_ = std::move(trigger);
    resample_ = std::move(resample);
    loop_ = &loop;
    if (resample_) loop.add(resample_.get(), EPOLLIN, [this](uint32_t) { on_resample(); });
    if (level_) signal();
  }
  void set_level(bool high) override {
    if (high && !level_) signal();
    level_ = high;
  }
  bool level() const { return level_; }
  // Crash recovery: the output as the device's previous process left it, which signalled any
  // rising edge already; no new signal.
  void resume_level(bool high) { level_ = high; }
  uint64_t signals() const { return signals_; }

 private:
  void on_resample() {
    uint64_t count;
    // Resets the resample eventfd (8-byte read into a local); EAGAIN only means a spurious wake.
    if (::read(resample_.get(), &count, sizeof count) != sizeof count) return;
    if (level_) signal();
  }
  void signal() {
    if (!trigger_) return;
    ++signals_;
    uint64_t one = 1;
    // 8-byte eventfd write from a local; KVM consumes it and injects the interrupt.
    [[maybe_unused]] ssize_t n = ::write(trigger_.get(), &one, sizeof one);
  }
  UniqueFd trigger_, resample_;
  EventLoop* loop_ = nullptr;
  bool level_ = false;
  uint64_t signals_ = 0;
};

}  // namespace bulkhead::device
