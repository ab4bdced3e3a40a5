// Booting the test guest on Bulkhead: the demo, SMP, memory layout, exit status, process layout.
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

class BootTest : public VmTest {};

TEST_F(BootTest, DemoBootsTheTestGuestAndExitsZero) {
  Subprocess vm(run_args({}), false);
  EXPECT_EQ(vm.wait(60s), 0) << vm.err();
  EXPECT_NE(vm.out().find("BH-BOOT bulkhead-test-guest"), std::string::npos) << vm.out();
  EXPECT_NE(vm.out().find("BH-RESULT hello"), std::string::npos);
  EXPECT_NE(vm.out().find("acpi_error=none"), std::string::npos) << "the guest checks our ACPI checksums";
  EXPECT_NE(vm.out().find("BH-DONE status=0"), std::string::npos);
}

TEST_F(BootTest, AllCpusComeUp) {
  for (int cpus : {1, 2, 4}) {
    Subprocess vm(run_args({"--cpus", std::to_string(cpus), "--cmdline", "smp"}), false);
    ASSERT_EQ(vm.wait(60s), 0) << vm.out() << vm.err();
    std::string expect = "cpus_expected=" + std::to_string(cpus) + " cpus_online=" + std::to_string(cpus);
    EXPECT_NE(vm.out().find(expect), std::string::npos) << vm.out();
    EXPECT_NE(vm.out().find("jobs=ok"), std::string::npos) << "every AP ran its job at CPL3";
    // APs come up in any order; together they are APIC IDs 0..cpus-1, each CPU reading its own.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("apic_ids=([0-9,]+)"))) << vm.out();
    std::vector<int> ids;
    std::stringstream list(m[1].str());
    for (std::string id; std::getline(list, id, ',');) ids.push_back(std::stoi(id));
    std::sort(ids.begin(), ids.end());
    std::vector<int> expected(cpus);
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(ids, expected) << vm.out();
  }
}

TEST_F(BootTest, GuestSeesTheMemoryItWasGiven) {
  for (const char* size : {"64M", "3584M"}) {  // the second one spans the PCI hole
    Subprocess vm(run_args({"--memory", size, "--cmdline", "hello"}), false);
    ASSERT_EQ(vm.wait(60s), 0) << vm.err();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("ram_kib=(\\d+)"))) << vm.out();
    uint64_t kib = std::stoull(m[1]);
    uint64_t expected_kib = (std::string(size) == "64M" ? 64ull : 3584ull) * 1024;
    EXPECT_EQ(kib, expected_kib - (0x100000 - 0x9fc00) / 1024) << "all but the BIOS hole below 1 MiB";
    if (std::string(size) == "3584M") {
      EXPECT_NE(vm.out().find("BH-MEMMAP base=0x100000000"), std::string::npos) << "RAM above 4 GiB";
    }
  }
}

TEST_F(BootTest, InitrdArrivesIntact) {
  std::string path = "/tmp/bulkhead-test-" + std::to_string(::getpid()) + "-initrd";
  std::string data(300000, '\0');
  uint32_t sum = 0;
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>((i * 2654435761u) >> 13);
    sum += static_cast<uint8_t>(data[i]);
  }
  std::ofstream(path, std::ios::binary) << data;
  Subprocess vm(run_args({"--initrd", path, "--cmdline", "hello"}), false);
  EXPECT_EQ(vm.wait(60s), 0) << vm.err();
  EXPECT_NE(vm.out().find("BH-RESULT initrd size=300000 sum=" + std::to_string(sum)), std::string::npos) << vm.out();
  ::unlink(path.c_str());
}

TEST_F(BootTest, ExitStatusComesFromTheGuest) {
  for (int status : {0, 7, 42, 255}) {
    Subprocess vm(run_args({"--cmdline", "exit=" + std::to_string(status)}), false);
    EXPECT_EQ(vm.wait(60s), status) << vm.err();
  }
}

TEST_F(BootTest, EveryRoleRunsAsItsOwnNamedProcess) {
  Subprocess vm(run_args({"--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.out() << vm.err();
  auto pids = role_processes();
  std::set<std::string> names;
  for (pid_t pid : pids) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  EXPECT_TRUE(names.count("bh-core")) << "core process";
  EXPECT_TRUE(names.count("bh-serial")) << "serial device process";
  EXPECT_GE(pids.size(), 2u);
  vm.write_stdin("done\n");
  EXPECT_EQ(vm.wait(60s), 0) << vm.err();
}

// Cpus_allowed_list of the thread named `name` in the core process `core`.
std::string allowed_cpus_of_thread(pid_t core, const std::string& name) {
  std::string tasks = "/proc/" + std::to_string(core) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::string comm;
    std::getline(std::ifstream(task.path() / "comm") >> std::ws, comm);
    if (comm != name) continue;
    std::ifstream status(task.path() / "status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
  }
  return "(no thread " + name + ")";
}

TEST_F(BootTest, VcpuPinKeepsEachVcpuThreadOnItsHostCpu) {
  cpu_set_t allowed;
  ASSERT_EQ(::sched_getaffinity(0, sizeof allowed, &allowed), 0);
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu)
    if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
  if (cpus.size() < 2) GTEST_SKIP() << "needs two host CPUs this test may use";
  // Reversed, so that a pin that did nothing or followed the vCPU index would show.
  std::string pin = std::to_string(cpus[1]) + "," + std::to_string(cpus[0]);
  Subprocess vm(run_args({"--cpus", "2", "--vcpu-pin", pin, "--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.out() << vm.err();
  pid_t core = -1;
  for (pid_t pid : role_processes()) {
    std::string name;
    std::getline(std::ifstream("/proc/" + std::to_string(pid) + "/comm"), name);
    if (name == "bh-core") core = pid;
  }
  ASSERT_GT(core, 0);
  EXPECT_EQ(allowed_cpus_of_thread(core, "bh-vcpu0"), std::to_string(cpus[1]));
  EXPECT_EQ(allowed_cpus_of_thread(core, "bh-vcpu1"), std::to_string(cpus[0]));
  vm.write_stdin("done\n");
  EXPECT_EQ(vm.wait(60s), 0) << vm.err();
}

TEST_F(BootTest, SigtermStopsTheVmAndEveryProcess) {
  Subprocess vm(run_args({"--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  vm.signal(SIGTERM);
  EXPECT_EQ(vm.wait(30s), 128 + SIGTERM);
  EXPECT_NE(vm.err().find("stopped by signal"), std::string::npos) << vm.err();
}

// A device whose state dies with its process (the e1000) ends the VM when it crashes.
TEST_F(BootTest, ADeviceCrashEndsTheVmWithAMessageNamingIt) {
  Subprocess vm(run_args({"--net", "user,model=e1000", "--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  pid_t nic = roles_of(vm.pid())["bh-e1000"];
  ASSERT_GT(nic, 0);
  ::kill(nic, SIGKILL);
  EXPECT_EQ(vm.wait(30s), 1);
  EXPECT_NE(vm.err().find("bh-e1000 (e1000-0) was killed by signal 9"), std::string::npos) << vm.err();
}

// The core dies with every kind of device process around it (and bh-slirp): within a second
// none of them is left and the state directory is gone; the launcher names the cause.
TEST_F(BootTest, KillingTheCoreEndsEveryProcessOfTheVmWithinASecond) {
  TempDir dir;
  std::string image = dir.file("disk.img");
  std::ofstream(image).close();
  ASSERT_EQ(::truncate(image.c_str(), 16 << 20), 0);
  Subprocess vm(run_args({"--name", "corekill", "--disk", image, "--net", "user", "--balloon", "on", "--cmdline", "idle"}));
  ASSERT_TRUE(vm.wait_for("BH-READY idle", 60s)) << vm.err();
  std::map<std::string, pid_t> roles = roles_of(vm.pid());
  for (const char* role : {"bh-core", "bh-serial", "bh-virtio-scsi", "bh-virtio-net", "bh-slirp", "bh-balloon"})
    ASSERT_TRUE(roles.count(role)) << role;
  auto killed = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(roles.at("bh-core"), SIGKILL), 0);
  EXPECT_TRUE(wait_for_no_role_processes(1s).empty()) << "a device outlived its core by a second";
  while (std::filesystem::exists("/run/bulkhead/corekill") && std::chrono::steady_clock::now() - killed < 1s)
    std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(std::filesystem::exists("/run/bulkhead/corekill")) << "the state directory outlived the VM by a second";
  EXPECT_EQ(vm.wait(30s), 1);
  EXPECT_NE(vm.err().find("the VM failed: bh-core was killed by signal 9"), std::string::npos) << vm.err();
}

// A device that hangs (stopped, not dead) must not stall the VM forever: after its bound it
// is treated like a device that died.
// A device process that stops answering (SIGSTOP) is treated as dead after 10 s: killed and
// restarted; the guest, which kept polling its UART meanwhile, then reads a line from it.
TEST_F(BootTest, AHungDeviceIsLostAfterItsBound) {
  Subprocess vm(run_args({"--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  auto start = std::chrono::steady_clock::now();
  pid_t serial = roles_of(vm.pid())["bh-serial"];
  ASSERT_GT(serial, 0);
  ::kill(serial, SIGSTOP);
  ASSERT_TRUE(vm.wait_for("restarted it (1 restart", 60s, true)) << vm.err();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(vm.err().find("device serial0 was lost: device did not answer within 10 s"), std::string::npos) << vm.err();
  EXPECT_GE(seconds, 9);
  EXPECT_LT(seconds, 30) << "the bound is 10 s";
  vm.write_stdin("awake\n");
  EXPECT_TRUE(vm.wait_for("BH-ECHO awake", 30s)) << vm.out() << vm.err();
  EXPECT_EQ(vm.wait(30s), 0) << vm.err();
}

// A third party's vhost-user back-end that accepts the connection and never answers.
TEST_F(BootTest, AVhostUserBackEndThatNeverAnswersIsAnErrorNotAHang) {
  TempDir dir;
  std::string path = dir.file("mute.sock");
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);  // the kernel completes the connection; nobody reads
  Subprocess vm(run_args({"--vhost-user", "type=blk,socket=" + path, "--cmdline", "hello"}), false);
  EXPECT_EQ(vm.wait(60s), 1);
  EXPECT_NE(vm.err().find("no answer to request 1 within 10 s"), std::string::npos) << vm.err();
}

}  // namespace
}  // namespace bulkhead::test
