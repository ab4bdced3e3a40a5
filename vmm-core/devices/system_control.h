// The ways a PC guest resets or powers itself off:
//  - keyboard controller command 0xfe on port 0x64 (Linux reboot=k),
//  - the reset control register 0xcf9 (also the FADT's RESET_REG);
// and ACPI S5 (power off) in acpi_pm.h.
// Bulkhead does not reboot a VM: a reset ends it, as QEMU's -no-reboot does.
#pragma once

#include "vmm-core/bus.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class KeyboardControllerReset : public BusDevice {
 public:
  explicit KeyboardControllerReset(VmControl& vm) : vm_(vm) {}
  // Status: output buffer empty, input buffer empty, so polling drivers move on.
  void read(uint64_t, std::span<uint8_t> data) override { store_le(data, 0); }
  void write(uint64_t, std::span<const uint8_t> data) override {
    if (load_le(data) == 0xfe) vm_.request_stop(ipc::VmStopped::GUEST_RESET, 0, "guest reset the machine (keyboard controller)");
  }

 private:
  VmControl& vm_;
};

class ResetControl : public BusDevice {
 public:
  explicit ResetControl(VmControl& vm) : vm_(vm) {}
  void read(uint64_t, std::span<uint8_t> data) override { store_le(data, 0); }
  void write(uint64_t, std::span<const uint8_t> data) override {
    if (load_le(data) & 0x04) vm_.request_stop(ipc::VmStopped::GUEST_RESET, 0, "guest reset the machine (port 0xcf9)");
  }

 private:
  VmControl& vm_;
};

}  // namespace bulkhead::core
