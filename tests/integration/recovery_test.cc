// Crash recovery: the supervisor restarts a virtio device process that dies, the core
// replays the vhost-user set-up to the new one, which resubmits what the dead one left in
// flight. The test guest checks every completion meanwhile (guest/scenarios/recovery.cc).
#include <signal.h>

#include <fstream>
#include <regex>
#include <thread>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"
#include "tests/support/net_peer.h"

namespace bulkhead::test {
namespace {

// The last N of "<progress>N" the guest reported, 0 before the first.
int last_progress(const std::string& out, const std::string& progress) {
  size_t at = out.rfind(progress);
  return at == std::string::npos ? 0 : std::stoi(out.substr(at + progress.size()));
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class RecoveryTest : public VmTest {
 protected:
  std::string image() {
    std::string path = dir_.file("disk.img");
    std::ofstream(path, std::ios::binary).seekp((16 << 20) - 1).put('\0');
    return path;
  }
  // The device process of `vm` called `role`, once there is one.
  static pid_t wait_for_role(Subprocess& vm, const std::string& role) {
    for (int i = 0; i < 500; ++i) {
      std::map<std::string, pid_t> roles = roles_of(vm.pid());
      if (roles.count(role)) return roles[role];
      std::this_thread::sleep_for(10ms);
    }
    return -1;
  }
  // Kills `role` of `vm` `kills` times. After each restart the guest must go on: its progress
  // counter (the number after `progress`, e.g. "scsi-verify round=") advances by `advance`.
  static void kill_repeatedly(Subprocess& vm, const std::string& role, int kills, const std::string& progress,
                              int advance) {
    for (int kill = 1; kill <= kills; ++kill) {
      SCOPED_TRACE(role + " kill " + std::to_string(kill));
      pid_t device = wait_for_role(vm, role);
      ASSERT_GT(device, 0) << vm.err();
      int at = last_progress(vm.out(), progress);
      ASSERT_EQ(::kill(device, SIGKILL), 0);
      ASSERT_TRUE(vm.wait_for("restarted it (" + std::to_string(kill) + " restart", 20s, true)) << vm.err();
      ASSERT_TRUE(vm.wait_for(progress + std::to_string(at + advance) + "\r\n", 30s)) << vm.err();
    }
  }
  TempDir dir_;
};

TEST_F(RecoveryTest, ScsiDiskVerifiesEveryRequestWhileItsProcessIsKilledTwentyTimes) {
  constexpr int kKills = 20;
  Subprocess vm(run_args({"--disk", image(), "--device-restarts", "100/60", "--cmdline", "scsi-verify=3000"}), false);
  ASSERT_TRUE(vm.wait_for("scsi-verify round=3\r\n", 60s)) << vm.err();
  ASSERT_NO_FATAL_FAILURE(kill_repeatedly(vm, "bh-virtio-scsi", kKills, "scsi-verify round=", 3));
  // The last restarted process is confined like the first.
  pid_t restarted = wait_for_role(vm, "bh-virtio-scsi");
  ASSERT_GT(restarted, 0);
  EXPECT_EQ(proc_status(restarted, "Seccomp"), "2");
  EXPECT_EQ(proc_status(restarted, "NoNewPrivs"), "1");
  EXPECT_EQ(proc_status(restarted, "CapEff"), "0000000000000000");
  EXPECT_EQ(proc_status(restarted, "Uid"), proc_status(roles_of(vm.pid())["bh-core"], "Uid")) << "the VM's own uid";
  EXPECT_EQ(vm.wait(120s), 0) << vm.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("BH-RESULT scsi-verify (\\w+) .*errors=(\\d+) duplicates=(\\d+) "
                                                        "mismatches=(\\d+)")))
      << vm.out();
  EXPECT_EQ(m[1], "ok");
  EXPECT_EQ(m[2], "0") << "the guest saw an I/O error";
  EXPECT_EQ(m[3], "0") << "a request completed twice";
  EXPECT_EQ(m[4], "0") << "data read back differs from what was acknowledged";
  EXPECT_EQ(count(vm.err(), "restarted it ("), static_cast<size_t>(kKills)) << vm.err();
  EXPECT_EQ(count(vm.err(), "error"), 0u) << vm.err();
}

// A sequenced UDP stream through user-mode networking while bh-virtio-net is killed ten
// times: bh-slirp lives on, so only frames in flight are lost (the guest sends those again
// and counts them), and no echo comes back corrupted.
TEST_F(RecoveryTest, UdpEchoesGoOnWhileTheNetProcessIsKilledTenTimes) {
  constexpr int kKills = 10;
  UdpEcho echo("127.0.0.1");
  ASSERT_NE(echo.port(), 0);
  Subprocess vm(run_args({"--net", "user", "--device-restarts", "100/60", "--cmdline",
                          "net-verify=" + std::to_string(echo.port()) + ",60000"}),
                false);
  ASSERT_TRUE(vm.wait_for("net-verify seq=100\r\n", 60s)) << vm.err();
  ASSERT_NO_FATAL_FAILURE(kill_repeatedly(vm, "bh-virtio-net", kKills, "net-verify seq=", 300));
  EXPECT_EQ(vm.wait(300s), 0) << vm.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("BH-RESULT net-verify (\\w+) datagrams=60000 resent=(\\d+) "
                                                        "corrupted=(\\d+) failed=(\\d+)")))
      << vm.out();
  EXPECT_EQ(m[1], "ok");
  EXPECT_LE(std::stoi(m[2]), 3 * kKills) << "more datagrams lost than were in flight at the kills";
  EXPECT_EQ(m[3], "0");
  EXPECT_EQ(m[4], "0");
}

// Inflate/deflate cycles while bh-balloon is killed ten times: every page of every inflate
// request reaches the host (it reads zero after deflating), and the pages work again.
TEST_F(RecoveryTest, BalloonCyclesReturnEveryPageWhileItsProcessIsKilledTenTimes) {
  constexpr int kKills = 10;
  Subprocess vm(run_args({"--memory", "256M", "--balloon", "target=192M", "--device-restarts", "100/60", "--cmdline",
                          "balloon-cycle=300"}),
                false);
  ASSERT_TRUE(vm.wait_for("balloon-cycle round=3\r\n", 60s)) << vm.err();
  ASSERT_NO_FATAL_FAILURE(kill_repeatedly(vm, "bh-balloon", kKills, "balloon-cycle round=", 3));
  EXPECT_EQ(vm.wait(300s), 0) << vm.err();
  EXPECT_TRUE(std::regex_search(vm.out(), std::regex("BH-RESULT balloon-cycle ok rounds=300 pages=4096 not_returned=0 "
                                                     "broken=0 refused=0")))
      << vm.out();
}

// Before its driver is loaded (QEMU 7.2 loses such reconnects) the restarted process gets
// what the core has: no rings yet; the driver then sets the device up on it.
TEST_F(RecoveryTest, ADeviceRestartedBeforeItsDriverLoadsServesTheDriverLater) {
  Subprocess vm(run_args({"--disk", image(), "--cmdline", "idle=3 scsi-verify=20"}), false);
  ASSERT_TRUE(vm.wait_for("BH-READY idle", 60s)) << vm.err();
  for (int kill = 1; kill <= 2; ++kill) {
    pid_t device = wait_for_role(vm, "bh-virtio-scsi");
    ASSERT_GT(device, 0) << vm.err();
    ASSERT_EQ(::kill(device, SIGKILL), 0);
    ASSERT_TRUE(vm.wait_for("restarted it (" + std::to_string(kill) + " restart", 20s, true)) << vm.err();
  }
  EXPECT_EQ(vm.wait(120s), 0) << vm.err();
  EXPECT_NE(vm.out().find("BH-RESULT scsi-verify ok rounds=20"), std::string::npos) << vm.out();
  EXPECT_EQ(vm.out().find("BH-RESULT idle"), vm.out().rfind("BH-RESULT idle")) << "the idle phase ran once";
}

TEST_F(RecoveryTest, ADeviceThatCrashesTooOftenStaysDownWhileTheVmRunsOn) {
  Subprocess vm(run_args({"--disk", image(), "--device-restarts", "2/60", "--cmdline", "scsi-verify=1000000"}), false);
  ASSERT_TRUE(vm.wait_for("scsi-verify round=1\r\n", 60s)) << vm.err();
  for (int kill = 1; kill <= 3; ++kill) {
    pid_t device = wait_for_role(vm, "bh-virtio-scsi");
    ASSERT_GT(device, 0) << vm.err();
    ASSERT_EQ(::kill(device, SIGKILL), 0);
    std::string expected = kill < 3 ? "restarted it (" + std::to_string(kill) + " restart" : "it stays down";
    ASSERT_TRUE(vm.wait_for(expected, 20s, true)) << vm.err();
  }
  EXPECT_NE(vm.err().find("crashed 3 times within 60 s; it stays down and the VM runs on without it"), std::string::npos)
      << vm.err();
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(vm.running());
  std::map<std::string, pid_t> roles = roles_of(vm.pid());
  EXPECT_TRUE(roles.count("bh-core"));
  EXPECT_FALSE(roles.count("bh-virtio-scsi"));
  vm.signal(SIGTERM);
  EXPECT_EQ(vm.wait(30s), 128 + SIGTERM) << vm.err();
}

TEST_F(RecoveryTest, AMalformedRestartPolicyIsAUsageError) {
  expect_usage_error(run_args({"--device-restarts", "5", "--cmdline", "hello"}), "--device-restarts '5' is not COUNT/SECONDS");
  expect_usage_error(run_args({"--device-restarts", "5/0", "--cmdline", "hello"}), "--device-restarts '5/0'");
}

}  // namespace
}  // namespace bulkhead::test
