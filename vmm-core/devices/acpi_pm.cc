#include "vmm-core/devices/acpi_pm.h"

#include <time.h>

#include "vmm-core/platform.h"

namespace bulkhead::core {

namespace {
constexpr uint64_t kTimerHz = 3579545;
constexpr uint64_t kStatus = 0, kEnable = 2, kControl = 4, kTimer = 8;
constexpr uint16_t kStatusBits = AcpiPm::kTimerStatus | AcpiPm::kPowerButtonStatus | AcpiPm::kWakeStatus;
// Enable bits read back as written (ACPICA checks, e.g. for the global lock's GBL_EN), even
// for events this machine never raises.
constexpr uint16_t kEnableBits = AcpiPm::kTimerStatus | AcpiPm::kGlobalStatus | AcpiPm::kPowerButtonStatus |
                                 AcpiPm::kSleepButtonStatus | AcpiPm::kRtcStatus;

uint32_t timer_now() {
  timespec ts;
  // CLOCK_MONOTONIC into a local: the PM timer only has to run steadily at its rate.
  clock_gettime(CLOCK_MONOTONIC, &ts);
  unsigned __int128 ns = static_cast<unsigned __int128>(ts.tv_sec) * 1'000'000'000u + static_cast<unsigned>(ts.tv_nsec);
  return static_cast<uint32_t>(ns * kTimerHz / 1'000'000'000u);
}
}  // namespace

uint8_t AcpiPm::read_byte(uint64_t offset) const {
  auto byte = [&](uint32_t reg) { return static_cast<uint8_t>(reg >> (8 * (offset % 2))); };
  if (offset - kStatus < 2) return byte(status_);
  if (offset - kEnable < 2) return byte(enable_);
  if (offset - kControl < 2) return byte(control_ & ~kSleepEnable);  // SLP_EN is write-only
  if (offset - kTimer < 4) return static_cast<uint8_t>(timer_now() >> (8 * (offset - kTimer)));
  return 0;
}

void AcpiPm::write_byte(uint64_t offset, uint8_t value) {
  uint16_t v = static_cast<uint16_t>(value << (8 * (offset % 2)));
  uint16_t lane = static_cast<uint16_t>(0xff << (8 * (offset % 2)));
  if (offset - kStatus < 2) {
    status_ &= ~(v & kStatusBits);  // write 1 to clear
  } else if (offset - kEnable < 2) {
    enable_ = static_cast<uint16_t>((enable_ & ~lane) | (v & lane & kEnableBits));
  } else if (offset - kControl < 2) {
    control_ = static_cast<uint16_t>(((control_ & ~lane) | (v & lane)) | kSciEnable);
    if (control_ & kSleepEnable) {
      control_ &= ~kSleepEnable;
      uint32_t type = (control_ >> kSleepTypeShift) & 7;
      if (type == platform::kSleepTypeS5) vm_.request_stop(ipc::VmStopped::GUEST_POWEROFF, 0, "guest powered off");
    }
  }
}

void AcpiPm::read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) data[i] = read_byte(offset + i);
}

void AcpiPm::write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) write_byte(offset + i, data[i]);
  update_sci();
}

void AcpiPm::press_power_button() {
  std::lock_guard lock(mutex_);
  status_ |= kPowerButtonStatus;
  update_sci();
}

void AcpiPm::update_sci() {
  bool level = (status_ & enable_) != 0;
  if (level == sci_) return;
  sci_ = level;
  set_sci_(level);
}

}  // namespace bulkhead::core
