// An interrupt line driven through a KVM irqfd. Edge-triggered: each rising edge of the
// device's level becomes one signal, as on an ISA bus.
#pragma once

#include <unistd.h>

#include "common/unique_fd.h"

namespace bulkhead::device {

class IrqSink {
 public:
  virtual ~IrqSink() = default;
  virtual void set_level(bool high) = 0;
};

class IrqLine : public IrqSink {
 public:
  void attach(UniqueFd irqfd) {
    fd_ = std::move(irqfd);
    if (level_) signal();
  }
  void set_level(bool high) override {
    if (high && !level_) signal();
    level_ = high;
  }
  bool level() const { return level_; }

 private:
  void signal() {
    if (!fd_) return;
    uint64_t one = 1;
    // 8-byte eventfd write from a local; KVM consumes it and injects the interrupt.
    [[maybe_unused]] ssize_t n = ::write(fd_.get(), &one, sizeof one);
  }
  UniqueFd fd_;
  bool level_ = false;
};

}  // namespace bulkhead::device
