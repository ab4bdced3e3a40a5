// ACPI fixed hardware (ACPI 6.4, 4.8): the PM1a event block (status and enable), the PM1a
// control block (sleep type and enable: S5 powers the VM off), the 32-bit PM timer, and the
// SCI it raises while an enabled status bit is set (the power button, for a graceful stop).
// Ports as in platform.h; accesses of any size and alignment within the block.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>

#include "vmm-core/bus.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class AcpiPm : public BusDevice {
 public:
  // `set_sci(level)` drives the SCI line (platform::kSciIrq).
  AcpiPm(VmControl& vm, std::function<void(bool level)> set_sci) : vm_(vm), set_sci_(std::move(set_sci)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;
  // As if the power button was pressed: the guest's ACPI driver sees a fixed-feature event.
  void press_power_button();

  // Register bits (PM1 status/enable, PM1 control).
  static constexpr uint16_t kTimerStatus = 1u << 0, kGlobalStatus = 1u << 5, kPowerButtonStatus = 1u << 8,
                            kSleepButtonStatus = 1u << 9, kRtcStatus = 1u << 10, kWakeStatus = 1u << 15;
  static constexpr uint16_t kSciEnable = 1u << 0, kSleepEnable = 1u << 13;
  static constexpr int kSleepTypeShift = 10;

 private:
  uint8_t read_byte(uint64_t offset) const;
  void write_byte(uint64_t offset, uint8_t value);
  void update_sci();

  VmControl& vm_;
  std::function<void(bool)> set_sci_;
  std::mutex mutex_;
  uint16_t status_ = 0, enable_ = 0, control_ = kSciEnable;
  bool sci_ = false;
};

}  // namespace bulkhead::core
