// ACPI fixed hardware: the registers Linux's ACPICA programs, the SCI, and S5.
#include "vmm-core/devices/acpi_pm.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "vmm-core/platform.h"

namespace bulkhead::core {
namespace {

class AcpiPmTest : public ::testing::Test {
 protected:
  uint16_t read16(uint64_t offset) {
    uint8_t b[2];
    pm.read(offset, b);
    return static_cast<uint16_t>(b[0] | b[1] << 8);
  }
  void write16(uint64_t offset, uint16_t v) {
    uint8_t b[2] = {static_cast<uint8_t>(v), static_cast<uint8_t>(v >> 8)};
    pm.write(offset, b);
  }
  uint32_t timer() {
    uint8_t b[4];
    pm.read(8, b);
    return static_cast<uint32_t>(b[0] | b[1] << 8 | b[2] << 16 | static_cast<uint32_t>(b[3]) << 24);
  }
  VmControl vm;
  std::vector<bool> sci;
  AcpiPm pm{vm, [this](bool level) { sci.push_back(level); }};
};

TEST_F(AcpiPmTest, AlwaysInAcpiModeAndS5PowersOff) {
  EXPECT_EQ(read16(4) & AcpiPm::kSciEnable, AcpiPm::kSciEnable) << "SCI_EN reads 1: no SMI_CMD mode switch";
  write16(4, static_cast<uint16_t>(3 << AcpiPm::kSleepTypeShift));  // SLP_TYP alone does nothing
  EXPECT_FALSE(vm.stopping());
  write16(4, static_cast<uint16_t>((platform::kSleepTypeS5 << AcpiPm::kSleepTypeShift) | AcpiPm::kSleepEnable));
  ASSERT_TRUE(vm.stopping());
  EXPECT_EQ(vm.result().reason(), ipc::VmStopped::GUEST_POWEROFF);
}

TEST_F(AcpiPmTest, OtherSleepStatesDoNotEndTheVm) {
  write16(4, static_cast<uint16_t>((1 << AcpiPm::kSleepTypeShift) | AcpiPm::kSleepEnable));
  EXPECT_FALSE(vm.stopping());
  EXPECT_EQ(read16(4) & AcpiPm::kSleepEnable, 0) << "SLP_EN is write-only";
}

TEST_F(AcpiPmTest, PowerButtonRaisesTheSciUntilItsStatusIsCleared) {
  pm.press_power_button();
  EXPECT_TRUE(sci.empty()) << "not enabled yet";
  EXPECT_EQ(read16(0) & AcpiPm::kPowerButtonStatus, AcpiPm::kPowerButtonStatus);
  write16(2, AcpiPm::kPowerButtonStatus);  // PWRBTN_EN
  ASSERT_EQ(sci, std::vector<bool>{true});
  write16(0, AcpiPm::kTimerStatus);  // clearing another bit leaves it
  EXPECT_EQ(sci, std::vector<bool>{true});
  write16(0, AcpiPm::kPowerButtonStatus);  // write 1 to clear
  EXPECT_EQ(sci, (std::vector<bool>{true, false}));
  EXPECT_EQ(read16(0) & AcpiPm::kPowerButtonStatus, 0);
}

TEST_F(AcpiPmTest, EnableBitsReadBackAsWritten) {
  write16(2, AcpiPm::kGlobalStatus);  // GBL_EN: ACPICA checks it before using the global lock
  EXPECT_EQ(read16(2), AcpiPm::kGlobalStatus);
  EXPECT_TRUE(sci.empty());
}

TEST_F(AcpiPmTest, ByteAccessesReachTheUpperHalfOfARegister) {
  pm.press_power_button();
  uint8_t hi = AcpiPm::kPowerButtonStatus >> 8;
  pm.write(3, {&hi, 1});  // PM1_EN high byte
  EXPECT_EQ(sci, std::vector<bool>{true});
  uint8_t status_hi;
  pm.read(1, {&status_hi, 1});
  EXPECT_EQ(status_hi, hi);
}

TEST_F(AcpiPmTest, TimerRunsAt3579545Hz) {
  uint32_t t0 = timer();
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  uint32_t t1 = timer();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  double hz = static_cast<uint32_t>(t1 - t0) / seconds;
  EXPECT_NEAR(hz, 3579545.0, 3579545.0 * 0.2) << "generous bounds: the two clock reads are not simultaneous";
}

}  // namespace
}  // namespace bulkhead::core
