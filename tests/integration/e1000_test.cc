// The e1000 on a running VM, driven by the test guest's driver (guest/drivers/e1000.cc) the
// way Linux's e1000 programs it: its EEPROM, PHY, link and INTx, the UDP echo through
// user-mode networking with the counters on both sides, full-virtualization mode, and QEMU's
// e1000 bugs done on purpose. Linux's own driver on it is the nested-lab test.
#include "tests/integration/vm_test.h"
#include "tests/support/net_peer.h"

namespace bulkhead::test {
namespace {

class E1000Test : public VmTest {
 protected:
  // Runs the test guest with `args`; its stdout must hold `result` and no failure.
  std::string run_guest(std::vector<std::string> args, const std::string& scenario, const std::string& result) {
    args.insert(args.end(), {"--kernel", test_guest(), "--cmdline", scenario});
    Subprocess vm(run_args(args), false);
    EXPECT_EQ(vm.wait(120s), 0) << vm.out() << vm.err();
    EXPECT_NE(vm.out().find(result), std::string::npos) << vm.out() << vm.err();
    EXPECT_EQ(vm.out().find("FAILED"), std::string::npos) << vm.out();
    return vm.out() + vm.err();
  }
};

TEST_F(E1000Test, EchoesThroughUserNetworkingWithTheCountersOfBothSides) {
  UdpEcho echo("127.0.0.1");
  ASSERT_NE(echo.port(), 0);
  run_guest({"--net", "user,model=e1000,mac=52:54:00:e1:00:01"}, "e1000=" + std::to_string(echo.port()),
            "BH-RESULT e1000 mac=52:54:00:e1:00:01 phy=01410c20");
  EXPECT_EQ(echo.echoed(), 42);
  EXPECT_EQ(echo.sunk(), 500) << "every frame of the guest's burst reached the host";
}

TEST_F(E1000Test, FullModeGivesEveryNicAnE1000) {
  std::string out = run_guest({"--mode", "full", "--net", "user"}, "e1000", "BH-RESULT e1000 mac=");
  EXPECT_NE(out.find("failed_check=\"none\" ok"), std::string::npos) << out;
}

TEST_F(E1000Test, QemusE1000BugsAreRefusedCountedAndSurvived) {
  UdpEcho echo("127.0.0.1");
  std::string port = std::to_string(echo.port());
  std::string out = run_guest({"--net", "user,model=e1000"}, "e1000-hostile=" + port + " e1000=" + port,
                              "BH-RESULT e1000-hostile refused_tso=1");
  EXPECT_NE(out.find("dropped: 1 packets beyond 64 KiB, 1 with offloads that do not fit, 3 descriptors or buffers "
                     "outside guest RAM, 1 ring walks from a head or tail outside its ring"),
            std::string::npos)
      << out;
}

TEST_F(E1000Test, BadNicOptionsAreRefused) {
  expect_usage_error(run_args({"--net", "user,model=e1000,queues=2"}), "queues must be a number from 1 to 1");
  expect_usage_error(run_args({"--net", "user,model=rtl8139"}), "model must be one of virtio, e1000");
}

}  // namespace
}  // namespace bulkhead::test
