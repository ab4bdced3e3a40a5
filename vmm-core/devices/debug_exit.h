// The debug-exit port: a guest write ends the VM with that value as exit status. It sits
// where QEMU's isa-debug-exit usually does (platform::kDebugExitPort), so one guest binary
// runs on both.
#pragma once

#include "vmm-core/bus.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class DebugExit : public BusDevice {
 public:
  explicit DebugExit(VmControl& vm) : vm_(vm) {}
  void read(uint64_t, std::span<uint8_t> data) override { store_le(data, 0); }
  void write(uint64_t, std::span<const uint8_t> data) override {
    uint32_t status = static_cast<uint32_t>(load_le(data) & 0xff);
    vm_.request_stop(ipc::VmStopped::GUEST_EXIT, status, "guest exited with status " + std::to_string(status));
  }

 private:
  VmControl& vm_;
};

}  // namespace bulkhead::core
