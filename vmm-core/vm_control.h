// How parts of the core end the VM: the first stop request wins, later ones are ignored.
#pragma once

#include <atomic>
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
  // Called on each stop request so vCPU threads leave KVM_RUN.
  void set_kick(std::function<void()> kick) { kick_ = std::move(kick); }

 private:
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  ipc::VmStopped result_;
  UniqueFd stop_event_;
  std::function<void()> kick_;
};

}  // namespace bulkhead::core
