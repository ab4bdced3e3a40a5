// A device kind that exists only in test builds (device-procs/scratch), added by its folder,
// one table entry and its policy files, driven by the test guest through every path of the
// legacy device protocol: BARs, a fixed port, configuration space, string I/O, DMA and its
// refusals, a level INTx at the slot's GSI that re-fires while raised, and an ISA line.
#include <fstream>
#include <regex>

#include "device-procs/device_kind.h"
#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"
#include "vmm-core/platform.h"

namespace bulkhead::test {
namespace {

class DeviceTableTest : public VmTest {
 protected:
  void SetUp() override {
    VmTest::SetUp();
    if (IsSkipped()) return;
    if (!devices::find_kind("scratch")) GTEST_SKIP() << "a build without test devices (BULKHEAD_TEST_DEVICES=OFF)";
  }
  TempDir dir_;
};

TEST_F(DeviceTableTest, TheTestGuestDrivesTheScratchDeviceThroughEveryPath) {
  // Alone it is PCI slot 1; after a virtio-scsi controller (earlier in the table), slot 2.
  for (bool with_disk : {false, true}) {
    std::vector<std::string> args = {"--scratch", "on", "--cmdline", "scratch"};
    if (with_disk) {
      std::string image = dir_.file("disk.img");
      std::ofstream(image) << std::string(1 << 20, '\0');
      args.insert(args.end(), {"--disk", image});
    }
    Subprocess vm(run_args(args), false);
    ASSERT_EQ(vm.wait(120s), 0) << vm.out() << vm.err();
    EXPECT_NE(vm.out().find("failed_check=\"none\" ok"), std::string::npos) << vm.out();
    uint32_t gsi = core::platform::pci_intx_gsi(with_disk ? 2 : 1, 0);
    EXPECT_NE(vm.out().find("gsi=" + std::to_string(gsi) + " "), std::string::npos) << "the slot decides the GSI\n" << vm.out();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("intx=(\\d+) isa_irqs=(\\d+) msi=(\\d+)"))) << vm.out();
    EXPECT_GE(std::stoul(m[1]), 5u) << "a raised level line fires again after every EOI";
    EXPECT_EQ(std::stoul(m[2]), 1u) << "one edge, one interrupt";
    EXPECT_EQ(std::stoul(m[3]), 2u) << "with MSI on, each rising edge of the line is one message, and INTx is quiet";
  }
}

TEST_F(DeviceTableTest, AnUnknownValueForItsOptionIsAUsageError) {
  Subprocess vm(run_args({"--scratch", "maybe"}), false);
  EXPECT_EQ(vm.wait(30s), 2);
  EXPECT_NE(vm.err().find("--scratch takes only 'on'"), std::string::npos) << vm.err();
}

}  // namespace
}  // namespace bulkhead::test
