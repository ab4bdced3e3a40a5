// How parts of the core end the VM: the first stop request wins, later ones are ignored.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "common/unique_fd.h"
#include "ipc/control.pb.h"

namespace bulkhead::core {

class VmControl {
 public:
  VmControl();

  void request_stop(ipc::VmStopped::Reason reason, uint32_t exit_code, const std::string& message);
  // A legacy device process died, hung up or stopped answering within its bound: its state
  // is lost with it, so this ends the VM, naming the device and why. (A virtio device is
  // reconnected instead: Vm::run.)
  void device_lost(const std::string& device, const std::string& why);
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  ipc::VmStopped result() const;
  // Becomes readable once a stop was requested.
  int stop_fd() const { return stop_event_.get(); }
  // Called on each stop or pause request so vCPU threads leave KVM_RUN.
  void set_kick(std::function<void()> kick) { kick_ = std::move(kick); }

  // `bulkhead ctl pause`: returns once all `vcpus` threads wait in park_while_paused() (or
  // the VM is stopping). resume() lets them go on.
  void pause(size_t vcpus);
  void resume();
  bool paused() const;
  // Called by each vCPU thread outside KVM_RUN: waits while the VM is paused.
  void park_while_paused();

 private:
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::condition_variable parking_;  // pause, resume, stop and each parked vCPU
  bool paused_ = false;
  size_t parked_ = 0;
  ipc::VmStopped result_;
  UniqueFd stop_event_;
  std::function<void()> kick_;
};

}  // namespace bulkhead::core
