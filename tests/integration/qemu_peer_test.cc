// The same test-guest binary on QEMU (a real peer), so the guest's results can be trusted
// and Bulkhead's behaviour compared with QEMU's.
#include "tests/integration/vm_test.h"

namespace bulkhead::test {
namespace {

class QemuPeerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_program("qemu-system-x86_64")) GTEST_SKIP() << "needs qemu-system-x86_64 (scripts/setup.sh installs it)";
    std::string why = kvm_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << "needs KVM: " << why;
  }
  // microvm starts fastest; isa-debug-exit sits where Bulkhead's debug-exit port is.
  static std::vector<std::string> qemu_args(const std::string& cmdline, int cpus = 1) {
    return {"/usr/bin/qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-m", "256M", "-smp", std::to_string(cpus),
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4", "-kernel", test_guest(), "-append", cmdline};
  }
  // QEMU's isa-debug-exit turns a guest status s into the exit code (s << 1) | 1.
  static int qemu_status(int guest_status) { return (guest_status << 1) | 1; }
};

TEST_F(QemuPeerTest, SameGuestBootsWithSmpAndValidTables) {
  Subprocess qemu(qemu_args("hello smp", 2), false);
  EXPECT_EQ(qemu.wait(60s), qemu_status(0)) << qemu.err();
  EXPECT_NE(qemu.out().find("acpi_error=none"), std::string::npos) << qemu.out();
  EXPECT_NE(qemu.out().find("cpus_expected=2 cpus_online=2"), std::string::npos) << qemu.out();
}

TEST_F(QemuPeerTest, SameGuestEchoesOverQemusUart) {
  Subprocess qemu(qemu_args("echo"));
  ASSERT_TRUE(qemu.wait_for("BH-READY echo", 60s)) << qemu.out() << qemu.err();
  qemu.write_stdin("from the host\n");
  EXPECT_TRUE(qemu.wait_for("BH-ECHO from the host", 30s)) << qemu.out();
  EXPECT_EQ(qemu.wait(30s), qemu_status(0));
}

TEST_F(QemuPeerTest, SameGuestTakesUartInterruptsOnQemu) {
  Subprocess qemu(qemu_args("serial-irq"));
  ASSERT_TRUE(qemu.wait_for("BH-READY serial-irq", 60s)) << qemu.out() << qemu.err();
  qemu.write_stdin("qemu-irq\n");
  EXPECT_EQ(qemu.wait(60s), qemu_status(0)) << qemu.out();
  EXPECT_NE(qemu.out().find("rx=qemu-irq"), std::string::npos) << qemu.out();
}

TEST_F(QemuPeerTest, ExitStatusTravelsTheSameWay) {
  Subprocess qemu(qemu_args("exit=9"), false);
  EXPECT_EQ(qemu.wait(60s), qemu_status(9));
}

}  // namespace
}  // namespace bulkhead::test
