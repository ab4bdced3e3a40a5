// `bulkhead ctl` and `bulkhead list` against running VMs: every command, and bad input
// (unknown VM, unknown device, a socket someone else owns) with a clear error.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <thread>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

class CtlTest : public VmTest {
 protected:
  std::vector<std::string> vm_args(const std::string& name, std::vector<std::string> extra) {
    std::string image = dir_.file(name + ".img");
    std::ofstream(image, std::ios::binary).seekp((16 << 20) - 1).put('\0');
    std::vector<std::string> args = {"--name", name, "--state-dir", dir_.file(name), "--disk", image};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_args(args);
  }
  std::vector<std::string> ctl(const std::string& name, std::vector<std::string> command) {
    std::vector<std::string> args = {bulkhead(), "ctl", "--socket", dir_.file(name + "/control.sock")};
    args.insert(args.end(), command.begin(), command.end());
    return args;
  }
  // Runs a ctl command to its end; returns its exit status, its output in `out`.
  static int run(const std::vector<std::string>& argv, std::string* out = nullptr, std::string* err = nullptr) {
    Subprocess p(argv, false);
    int status = p.wait(60s);
    if (out) *out = p.out();
    if (err) *err = p.err();
    return status;
  }
  static pid_t pid_in_status(const std::string& status, const std::string& device) {
    std::smatch m;
    if (!std::regex_search(status, m, std::regex(device + " +\\S+ +running +(\\d+)"))) return -1;
    return std::stoi(m[1]);
  }
  TempDir dir_;
};

TEST_F(CtlTest, StatusDevicesRestartEventsAndKill) {
  Subprocess vm(vm_args("ctl1", {"--cmdline", "scsi-verify=1000000"}), false);
  ASSERT_TRUE(vm.wait_for("scsi-verify round=1\r\n", 60s)) << vm.err();

  std::string out, err;
  ASSERT_EQ(run(ctl("ctl1", {"status"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("VM ctl1 (supervisor pid " + std::to_string(vm.pid()) + "): running"), std::string::npos) << out;
  pid_t first = pid_in_status(out, "virtio-scsi0");
  EXPECT_GT(first, 0) << out;
  EXPECT_GT(pid_in_status(out, "serial0"), 0) << out;

  ASSERT_EQ(run(ctl("ctl1", {"--json", "devices"}), &out), 0);
  EXPECT_NE(out.find("\"name\":\"virtio-scsi0\",\"process\":\"bh-virtio-scsi\",\"state\":\"RUNNING\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"name\":\"serial0\""), std::string::npos) << out;
  EXPECT_EQ(out.find("\"restartable\":false"), std::string::npos) << "virtio-scsi and the serial port restart: " << out;

  ASSERT_EQ(run({bulkhead(), "list", "--state-root", dir_.path()}, &out), 0);
  EXPECT_TRUE(std::regex_search(out, std::regex("ctl1 +running +" + std::to_string(vm.pid()) + " +serial0,virtio-scsi0")))
      << out;

  Subprocess events(ctl("ctl1", {"events"}), false);
  ASSERT_TRUE(events.wait_for("events of VM ctl1 until it ends:", 20s)) << events.err();
  ASSERT_EQ(run(ctl("ctl1", {"restart-device", "virtio-scsi0"}), &out, &err), 0) << err;
  ASSERT_TRUE(events.wait_for("restart virtio-scsi0: restarted as pid", 20s)) << events.out() << events.err();
  ASSERT_EQ(run(ctl("ctl1", {"status"}), &out), 0);
  pid_t second = pid_in_status(out, "virtio-scsi0");
  EXPECT_GT(second, 0) << out;
  EXPECT_NE(second, first) << out;
  // A crash shows in the stream and in the status.
  ASSERT_EQ(::kill(second, SIGKILL), 0);
  ASSERT_TRUE(events.wait_for("crash virtio-scsi0: bh-virtio-scsi (virtio-scsi0) was killed by signal 9", 20s))
      << events.out();
  ASSERT_TRUE(vm.wait_for("restarted it (1 restart", 20s, true)) << vm.err();
  ASSERT_EQ(run(ctl("ctl1", {"status"}), &out), 0);
  EXPECT_TRUE(std::regex_search(out, std::regex("virtio-scsi0 +bh-virtio-scsi +running +\\d+ +2 +bh-virtio-scsi "
                                                "\\(virtio-scsi0\\) was killed by signal 9")))
      << out;

  ASSERT_EQ(run(ctl("ctl1", {"kill"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("VM ctl1 stopped"), std::string::npos) << out;
  EXPECT_EQ(vm.wait(30s), 128 + SIGKILL);
  EXPECT_NE(vm.err().find("bulkhead: stopped by bulkhead ctl kill"), std::string::npos) << vm.err();
  EXPECT_EQ(events.wait(30s), 0);
  EXPECT_NE(events.out().find("vm-stopped: stopped by bulkhead ctl kill"), std::string::npos) << events.out();
}

TEST_F(CtlTest, RestartDeviceBringsBackADeviceMarkedFailed) {
  Subprocess vm(vm_args("ctl2", {"--device-restarts", "0/60", "--cmdline", "scsi-verify=1000000"}), false);
  ASSERT_TRUE(vm.wait_for("scsi-verify round=1\r\n", 60s)) << vm.err();
  std::string out, err;
  ASSERT_EQ(run(ctl("ctl2", {"status"}), &out), 0);
  ASSERT_EQ(::kill(pid_in_status(out, "virtio-scsi0"), SIGKILL), 0);
  ASSERT_TRUE(vm.wait_for("it stays down", 20s, true)) << vm.err();
  ASSERT_EQ(run(ctl("ctl2", {"status"}), &out), 0);
  EXPECT_TRUE(std::regex_search(out, std::regex("virtio-scsi0 +bh-virtio-scsi +failed +- +0 +.*crashed 1 time within 60 s")))
      << out;
  // The guest waits on the dead device; after restart-device it goes on.
  int stuck_at = 0;
  {
    size_t at = vm.out().rfind("round=");
    stuck_at = std::stoi(vm.out().substr(at + 6));
  }
  ASSERT_EQ(run(ctl("ctl2", {"restart-device", "virtio-scsi0"}), &out, &err), 0) << err;
  EXPECT_TRUE(vm.wait_for("scsi-verify round=" + std::to_string(stuck_at + 2) + "\r\n", 30s)) << vm.err();
  ASSERT_EQ(run(ctl("ctl2", {"status"}), &out), 0);
  EXPECT_GT(pid_in_status(out, "virtio-scsi0"), 0) << out;
  EXPECT_EQ(vm.out().find("BH-RESULT"), std::string::npos) << "no I/O error ended the guest's workload: " << vm.out();
  ASSERT_EQ(run(ctl("ctl2", {"stop", "--timeout", "1"}), &out, &err), 0) << err;
  EXPECT_EQ(vm.wait(30s), 128 + SIGKILL);
  EXPECT_NE(vm.err().find("stopped by bulkhead ctl stop (the guest did not power off within 1 s)"), std::string::npos)
      << vm.err();
}

// The last "round=N" the guest printed.
int last_round(const std::string& out) {
  size_t at = out.rfind("round=");
  return at == std::string::npos ? 0 : std::stoi(out.substr(at + 6));
}

TEST_F(CtlTest, PauseStopsTheGuestWhileItsDeviceRestartsAndResumeGoesOn) {
  Subprocess vm(vm_args("ctl5", {"--cpus", "2", "--cmdline", "scsi-verify=1000000"}), false);
  ASSERT_TRUE(vm.wait_for("scsi-verify round=1\r\n", 60s)) << vm.err();
  Subprocess events(ctl("ctl5", {"events"}), false);
  ASSERT_TRUE(events.wait_for("events of VM ctl5 until it ends:", 20s)) << events.err();

  std::string out, err;
  ASSERT_EQ(run(ctl("ctl5", {"pause"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("VM ctl5 paused"), std::string::npos) << out;
  ASSERT_EQ(run(ctl("ctl5", {"status"}), &out), 0);
  EXPECT_NE(out.find("VM ctl5 (supervisor pid " + std::to_string(vm.pid()) + "): paused"), std::string::npos) << out;
  EXPECT_EQ(run(ctl("ctl5", {"pause"}), &out, &err), 2);
  EXPECT_NE(err.find("the VM is paused already"), std::string::npos) << err;

  // What the guest wrote before its vCPUs stopped drains; after that it writes nothing.
  vm.wait_for("(nothing)", 500ms);
  int paused_at = last_round(vm.out());
  EXPECT_FALSE(vm.wait_for("round=" + std::to_string(paused_at + 1) + "\r\n", 2s)) << "a paused guest made progress";

  // A device that dies while the VM is paused is back before it resumes.
  ASSERT_EQ(run(ctl("ctl5", {"status"}), &out), 0);
  pid_t before = pid_in_status(out, "virtio-scsi0");
  ASSERT_GT(before, 0) << out;
  ASSERT_EQ(::kill(before, SIGKILL), 0);
  ASSERT_TRUE(vm.wait_for("restarted it (1 restart", 20s, true)) << vm.err();
  EXPECT_EQ(last_round(vm.out()), paused_at);

  ASSERT_EQ(run(ctl("ctl5", {"resume"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("VM ctl5 running"), std::string::npos) << out;
  EXPECT_TRUE(vm.wait_for("round=" + std::to_string(paused_at + 2) + "\r\n", 30s)) << vm.out() << vm.err();
  EXPECT_EQ(run(ctl("ctl5", {"resume"}), &out, &err), 2);
  EXPECT_NE(err.find("the VM is not paused"), std::string::npos) << err;
  EXPECT_TRUE(events.wait_for("resumed: the vCPUs run again", 10s)) << events.out();
  EXPECT_NE(events.out().find("paused: every vCPU stopped"), std::string::npos) << events.out();
  EXPECT_EQ(vm.out().find("BH-RESULT"), std::string::npos) << "no I/O error ended the guest's workload: " << vm.out();
  EXPECT_EQ(vm.err().find("the guest's clock"), std::string::npos) << "KVM_GET_CLOCK and KVM_SET_CLOCK work: " << vm.err();

  // A paused VM can still be stopped.
  ASSERT_EQ(run(ctl("ctl5", {"pause"}), &out, &err), 0) << err;
  ASSERT_EQ(run(ctl("ctl5", {"kill"}), &out, &err), 0) << err;
  EXPECT_EQ(vm.wait(30s), 128 + SIGKILL);
}

TEST_F(CtlTest, BadInputGetsAClearErrorAndANonZeroExit) {
  std::string out, err;
  EXPECT_EQ(run({bulkhead(), "ctl", "--vm", "nosuch", "--state-root", dir_.path(), "status"}, &out, &err), 2);
  EXPECT_NE(err.find("bulkhead: error: no VM control socket at " + dir_.file("nosuch/control.sock")), std::string::npos) << err;
  EXPECT_EQ(run({bulkhead(), "ctl", "status"}, &out, &err), 2);
  EXPECT_NE(err.find("needs --vm NAME or --socket PATH"), std::string::npos) << err;
  EXPECT_EQ(run({bulkhead(), "ctl", "--vm", "a", "--socket", "/b", "status"}, &out, &err), 2);
  EXPECT_NE(err.find("excludes"), std::string::npos) << err;
  EXPECT_EQ(run({bulkhead(), "ctl", "--vm", "a"}, &out, &err), 2) << "a command is required";

  // A control socket that someone else owns is not talked to.
  std::string path = dir_.file("other.sock");
  int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strcpy(a.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::chown(path.c_str(), 12345, 12345), 0);
  EXPECT_EQ(run({bulkhead(), "ctl", "--socket", path, "status"}, &out, &err), 2);
  EXPECT_NE(err.find(path + " belongs to uid 12345, neither you nor root"), std::string::npos) << err;
  ::close(fd);
  EXPECT_EQ(run({bulkhead(), "ctl", "--socket", dir_.file("nosuch.img"), "status"}, &out, &err), 2);

  // On a running VM: an unknown device, one whose state would die with its process (e1000).
  std::string ide_image = dir_.file("ide.img");
  std::ofstream(ide_image, std::ios::binary).seekp((1 << 20) - 1).put('\0');
  Subprocess vm(vm_args("ctl3", {"--disk", ide_image + ",bus=ide", "--net", "user,model=e1000", "--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  EXPECT_EQ(run(ctl("ctl3", {"balloon", "32M"}), &out, &err), 2);
  EXPECT_NE(err.find("this VM has no balloon (bulkhead run --balloon on)"), std::string::npos) << err;
  EXPECT_EQ(run(ctl("ctl3", {"restart-device", "nope"}), &out, &err), 2);
  EXPECT_NE(err.find("no device 'nope' in this VM (its devices: serial0, ide0, virtio-scsi0, e1000-0)"), std::string::npos)
      << err;
  EXPECT_EQ(run(ctl("ctl3", {"restart-device", "e1000-0"}), &out, &err), 2);
  EXPECT_NE(err.find("e1000-0 cannot be restarted: its state would be lost with its process"), std::string::npos) << err;
  // IDE can: its controller's state lives in the core's state page.
  ASSERT_EQ(run(ctl("ctl3", {"restart-device", "ide0"}), &out, &err), 0) << err;
  ASSERT_TRUE(vm.wait_for("restarted bh-ide (ide0) as bulkhead ctl asked", 20s, true)) << vm.err();
  // The serial port can: the guest, waiting for a line, gets it from the new process.
  ASSERT_EQ(run(ctl("ctl3", {"restart-device", "serial0"}), &out, &err), 0) << err;
  ASSERT_TRUE(vm.wait_for("restarted bh-serial (serial0) as bulkhead ctl asked", 20s, true)) << vm.err();
  vm.write_stdin("still here\n");
  EXPECT_TRUE(vm.wait_for("BH-ECHO still here", 20s)) << vm.out() << vm.err();
  vm.signal(SIGTERM);
  vm.wait(30s);
  // The VM is gone, and so is its socket.
  EXPECT_EQ(run(ctl("ctl3", {"status"}), &out, &err), 2);
  EXPECT_NE(err.find("no VM control socket"), std::string::npos) << err;
}

// `ctl balloon` changes the device's num_pages and tells the driver (a configuration
// interrupt; this guest's driver polls num_pages, Linux's takes the interrupt in the lab);
// `balloon-stats` shows what the driver reports back. Bad sizes are refused before or by the core.
TEST_F(CtlTest, BalloonSetsATargetTheGuestFollowsAndStatsShowIt) {
  Subprocess vm(vm_args("ctl6", {"--memory", "128M", "--balloon", "on", "--cmdline", "balloon-follow=2"}), false);
  ASSERT_TRUE(vm.wait_for("BH-PROGRESS balloon-follow change=0 pages=0", 60s)) << vm.out() << vm.err();
  std::string out, err;
  ASSERT_EQ(run(ctl("ctl6", {"balloon-stats"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("VM ctl6: memory 128 MiB, target 128 MiB, the guest keeps 128 MiB (0 MiB in the balloon)"),
            std::string::npos) << out;
  // The statistics the guest handed bh-balloon, through the supervisor's query to it.
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n  swap-in +7\n  swap-out +0\n)"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n  free +\d{7,}\n)"))) << out;

  EXPECT_EQ(run(ctl("ctl6", {"balloon", "lots"}), &out, &err), 2);
  EXPECT_NE(err.find("balloon: memory size 'lots' is not a size"), std::string::npos) << err;
  EXPECT_EQ(run(ctl("ctl6", {"balloon", "1G"}), &out, &err), 2);
  EXPECT_NE(err.find("must be a multiple of 4K, more than 0 and at most the VM's memory (128M)"), std::string::npos) << err;
  EXPECT_EQ(run(ctl("ctl6", {"balloon", "4097B"}), &out, &err), 2);
  EXPECT_NE(err.find("must be a multiple of 4K"), std::string::npos) << err;
  EXPECT_EQ(run(ctl("ctl6", {"balloon", "0"}), &out, &err), 2);

  // A balloon process that does not answer costs the request a second, not the supervisor.
  std::map<std::string, pid_t> roles = roles_of(vm.pid());
  ASSERT_TRUE(roles.count("bh-balloon"));
  ASSERT_EQ(::kill(roles.at("bh-balloon"), SIGSTOP), 0);
  ASSERT_EQ(run(ctl("ctl6", {"balloon-stats"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("guest memory statistics: none (bh-balloon did not answer within 1 s)"), std::string::npos) << out;
  ASSERT_EQ(run(ctl("ctl6", {"status"}), &out, &err), 0) << err;
  ASSERT_EQ(::kill(roles.at("bh-balloon"), SIGCONT), 0);
  // Running again, it answers the next request (its late answer to the first is dropped: ids).
  ASSERT_EQ(run(ctl("ctl6", {"balloon-stats"}), &out, &err), 0) << err;
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n  swap-in +7\n)"))) << out;

  ASSERT_EQ(run(ctl("ctl6", {"balloon", "96M"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("target 96 MiB"), std::string::npos) << out;
  ASSERT_TRUE(vm.wait_for("BH-PROGRESS balloon-follow change=1 pages=8192", 30s)) << vm.out() << vm.err();
  ASSERT_EQ(run(ctl("ctl6", {"--json", "balloon-stats"}), &out, &err), 0) << err;
  EXPECT_NE(out.find(R"("balloon":{"memoryBytes":"134217728","targetBytes":"100663296","guestBytes":"100663296","guestStats":[{"name":"swap-in","value":"7"},)"),
            std::string::npos) << out;

  // The target outlives a restart of the balloon's process: the core keeps it.
  ASSERT_EQ(run(ctl("ctl6", {"restart-device", "virtio-balloon0"}), &out, &err), 0) << err;
  ASSERT_TRUE(vm.wait_for("restarted bh-balloon (virtio-balloon0) as bulkhead ctl asked", 20s, true)) << vm.err();
  ASSERT_EQ(run(ctl("ctl6", {"balloon-stats"}), &out, &err), 0) << err;
  EXPECT_NE(out.find("target 96 MiB, the guest keeps 96 MiB (32 MiB in the balloon)"), std::string::npos) << out;
  // The new process has the statistics buffer the guest left with the device, resubmitted.
  EXPECT_TRUE(std::regex_search(out, std::regex(R"(\n  swap-in +7\n)"))) << out;

  ASSERT_EQ(run(ctl("ctl6", {"balloon", "128M"}), &out, &err), 0) << err;
  EXPECT_EQ(vm.wait(60s), 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("BH-RESULT balloon-follow ok changes=2 pages=0 not_returned=0 broken=0 refused=0"),
            std::string::npos) << vm.out();
}

TEST_F(CtlTest, TheControlSocketRefusesOtherUsers) {
  Subprocess vm(vm_args("ctl4", {"--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  std::string path = dir_.file("ctl4/control.sock");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "owner-only";
  // Past the file mode (opened up here on purpose), the supervisor checks the peer's uid.
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  ASSERT_EQ(::chmod(dir_.file("ctl4").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  pid_t child = ::fork();
  if (child == 0) {
    if (::setresgid(54321, 54321, 54321) != 0 || ::setresuid(54321, 54321, 54321) != 0) ::_exit(3);
    int fd = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::_exit(4);
    char request[] = {0x08, 0x01, 0x52, 0x00};  // version 1, status
    ::send(fd, request, sizeof request, MSG_NOSIGNAL);
    char reply[256];
    ssize_t n = ::recv(fd, reply, sizeof reply, 0);
    ::_exit(n <= 0 ? 0 : 5);  // refused: closed without an answer
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_TRUE(vm.wait_for("refused a client running as uid 54321", 10s, true)) << vm.err();
  vm.signal(SIGTERM);
  vm.wait(30s);
}

}  // namespace
}  // namespace bulkhead::test
