#include "vmm-core/vm_control.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"

namespace bulkhead::core {

VmControl::VmControl() {
  // A fresh eventfd, owned by stop_event_.
  stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_event_) throw_errno("eventfd");
}

void VmControl::request_stop(ipc::VmStopped::Reason reason, uint32_t exit_code, const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_.load(std::memory_order_relaxed)) return;
    result_.set_reason(reason);
    result_.set_exit_code(exit_code);
    result_.set_message(message);
    stopping_.store(true, std::memory_order_release);
  }
  parking_.notify_all();
  uint64_t one = 1;
  // Wakes the main thread; an 8-byte eventfd write cannot fail here.
  [[maybe_unused]] ssize_t n = ::write(stop_event_.get(), &one, sizeof one);
  if (kick_) kick_();
}

void VmControl::device_lost(const std::string& device, const std::string& why) {
  request_stop(ipc::VmStopped::VMM_ERROR, 1, "device " + device + " was lost: " + why);
}

void VmControl::pause(size_t vcpus) {
  std::unique_lock lock(mutex_);
  paused_ = true;
  lock.unlock();
  if (kick_) kick_();
  lock.lock();
  parking_.wait(lock, [&] { return parked_ == vcpus || stopping(); });
}

void VmControl::resume() {
  std::lock_guard lock(mutex_);
  paused_ = false;
  parking_.notify_all();
}

bool VmControl::paused() const {
  std::lock_guard lock(mutex_);
  return paused_;
}

void VmControl::park_while_paused() {
  std::unique_lock lock(mutex_);
  if (!paused_ || stopping()) return;
  ++parked_;
  parking_.notify_all();
  parking_.wait(lock, [&] { return !paused_ || stopping(); });
  --parked_;
}

ipc::VmStopped VmControl::result() const {
  std::lock_guard lock(mutex_);
  return result_;
}

}  // namespace bulkhead::core
