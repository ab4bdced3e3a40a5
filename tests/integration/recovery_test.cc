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

// DMA and PIO writes, flushes and read-backs on an IDE disk while bh-ide is killed twenty
// times: the core keeps the controller's state page, the next process resumes the command the
// dead one was in (guest/scenarios/ide.cc, ide-verify).
TEST_F(RecoveryTest, AnIdeDiskVerifiesEveryCommandWhileItsProcessIsKilledTwentyTimes) {
  constexpr int kKills = 20;
  // 120 rounds of about 0.4 s: more than the 3 + 3 * kKills the kills take.
  Subprocess vm(run_args({"--disk", image() + ",bus=ide", "--device-restarts", "100/60", "--cmdline", "ide-verify=120"}),
                false);
  ASSERT_TRUE(vm.wait_for("ide-verify round=3\r\n", 60s)) << vm.err();
  ASSERT_NO_FATAL_FAILURE(kill_repeatedly(vm, "bh-ide", kKills, "ide-verify round=", 3));
  pid_t restarted = wait_for_role(vm, "bh-ide");
  ASSERT_GT(restarted, 0);
  EXPECT_EQ(proc_status(restarted, "Seccomp"), "2");
  EXPECT_EQ(proc_status(restarted, "CapEff"), "0000000000000000");
  EXPECT_EQ(vm.wait(120s), 0) << vm.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("BH-RESULT ide-verify (\\w+) rounds=120 commands=(\\d+) "
                                                        "errors=(\\d+) mismatches=(\\d+)")))
      << vm.out();
  EXPECT_EQ(m[1], "ok");
  EXPECT_EQ(m[2], "1320") << "every command ran once";
  EXPECT_EQ(m[3], "0") << "the guest saw a command fail";
  EXPECT_EQ(m[4], "0") << "data read back differs from what was written";
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

// The test guest's flood=N line number `i`, as the serial port sends it.
std::string flood_line(int i) {
  char line[80];
  std::snprintf(line, sizeof line, "BH-FLOOD %08d abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNO\r\n", i);
  return line;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Whether `out` is `expected` with nothing lost, where a stretch of up to `max_repeat` bytes
// may appear twice in a row (a restarted serial process writes again what its predecessor was
// writing when it was killed). Adds the bytes repeated to `*repeated`.
bool matches_with_repeats(const std::string& out, const std::string& expected, size_t max_repeat, size_t* repeated) {
  size_t o = 0, e = 0;
  while (e < expected.size()) {
    if (o < out.size() && out[o] == expected[e]) {
      ++o, ++e;
      continue;
    }
    // A replay: what follows in `out` repeats the last d bytes of `expected` matched so far.
    size_t d = 1;
    while (d <= std::min(max_repeat, e) && out.compare(o, d, expected, e - d, d) != 0) ++d;
    if (d > std::min(max_repeat, e)) return false;
    o += d;
    *repeated += d;
  }
  return o == out.size();
}

// Whether the supervisor said it restarted a device `n` times in all (its message counts only
// the restarts of the last 60 s).
bool wait_for_restarts(Subprocess& vm, size_t n) {
  for (int i = 0; i < 2000 && count(vm.err(), "restarted it (") < n; ++i) vm.read_for(10ms);
  return count(vm.err(), "restarted it (") >= n;
}

// bh-serial keeps its UART in the core's state page: a process started after a SIGKILL goes on
// with the dead one's registers and output buffer, and writes a log file from the position it
// committed, so the log holds every line of the guest's flood exactly once.
TEST_F(RecoveryTest, TheSerialLogHoldsEveryLineOnceWhileItsProcessIsKilledTwentyTimes) {
  constexpr int kKills = 20, kLines = 4000;
  std::string log = dir_.file("console.log");
  Subprocess vm(run_args({"--serial", "file=" + log, "--device-restarts", "100/60", "--cmdline",
                          "flood=" + std::to_string(kLines)}),
                false);
  auto lines_so_far = [&] { return count(read_file(log), "\n"); };
  auto wait_for_lines = [&](size_t n) {
    for (int i = 0; i < 3000 && lines_so_far() < n; ++i) vm.read_for(10ms);
    return lines_so_far() >= n;
  };
  ASSERT_TRUE(wait_for_lines(50)) << vm.err();
  for (int kill = 1; kill <= kKills; ++kill) {
    SCOPED_TRACE("kill " + std::to_string(kill));
    pid_t device = wait_for_role(vm, "bh-serial");
    ASSERT_GT(device, 0) << vm.err();
    size_t before = lines_so_far();
    ASSERT_EQ(::kill(device, SIGKILL), 0);
    ASSERT_TRUE(wait_for_restarts(vm, kill)) << vm.err();
    ASSERT_TRUE(wait_for_lines(before + 20)) << "no output after the restart; " << vm.err();
  }
  ASSERT_EQ(vm.wait(300s), 0) << vm.err();
  std::string text = read_file(log);
  size_t at = text.find("BH-FLOOD ");
  ASSERT_NE(at, std::string::npos) << text.substr(0, 2000);
  for (int i = 0; i < kLines; ++i, at += flood_line(0).size())
    ASSERT_EQ(text.compare(at, flood_line(i).size(), flood_line(i)), 0)
        << "line " << i << " lost, damaged or repeated: " << text.substr(at, 200);
  EXPECT_EQ(text.substr(at), "BH-RESULT flood lines=" + std::to_string(kLines) + "\r\nBH-DONE status=0\r\n");
  EXPECT_EQ(count(vm.err(), "restarted it ("), static_cast<size_t>(kKills)) << vm.err();
}

// On a stream (here the launcher's stdout, a pipe) a restarted bh-serial may write again what
// the dead one wrote just before it died, but loses nothing; and the guest's input goes on
// reaching it, polled, after restarts: the UART's registers survived.
TEST_F(RecoveryTest, TheSerialConsoleOnAStreamLosesNoLineAndTakesInputAfterRestarts) {
  constexpr int kKills = 10, kLines = 2000;
  Subprocess vm(run_args({"--device-restarts", "100/60", "--cmdline", "flood=" + std::to_string(kLines) + " echo"}), true);
  ASSERT_TRUE(vm.wait_for(flood_line(50), 60s)) << vm.err();
  for (int kill = 1; kill <= kKills + 1; ++kill) {
    SCOPED_TRACE("kill " + std::to_string(kill));
    if (kill == kKills + 1) {  // the last, while the guest waits for input
      ASSERT_TRUE(vm.wait_for("BH-READY echo", 120s)) << vm.err();
    }
    pid_t device = wait_for_role(vm, "bh-serial");
    ASSERT_GT(device, 0) << vm.err();
    size_t before = count(vm.out(), "BH-FLOOD");
    ASSERT_EQ(::kill(device, SIGKILL), 0);
    ASSERT_TRUE(wait_for_restarts(vm, kill)) << vm.err();
    for (int i = 0; i < 3000 && kill <= kKills && count(vm.out(), "BH-FLOOD") < before + 20; ++i) vm.read_for(10ms);
  }
  vm.write_stdin("after restarts\n");
  ASSERT_TRUE(vm.wait_for("BH-ECHO after restarts", 30s)) << vm.out() << vm.err();
  ASSERT_EQ(vm.wait(60s), 0) << vm.err();
  std::string expected;
  for (int i = 0; i < kLines; ++i) expected += flood_line(i);
  std::string out = vm.out();
  size_t first = out.find(flood_line(0)), last = out.find("BH-RESULT flood");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(last, std::string::npos);
  size_t repeated = 0;
  ASSERT_TRUE(matches_with_repeats(out.substr(first, last - first), expected, 512, &repeated)) << out;
  std::printf("bytes written again after %d restarts: %zu\n", kKills + 1, repeated);
}

TEST_F(RecoveryTest, AMalformedRestartPolicyIsAUsageError) {
  expect_usage_error(run_args({"--device-restarts", "5", "--cmdline", "hello"}), "--device-restarts '5' is not COUNT/SECONDS");
  expect_usage_error(run_args({"--device-restarts", "5/0", "--cmdline", "hello"}), "--device-restarts '5/0'");
}

}  // namespace
}  // namespace bulkhead::test
