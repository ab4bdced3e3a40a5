// Confinement, checked on running VMs: every process's /proc status and namespaces, forbidden
// system calls attempted by confined roles (self-test hooks), two VMs side by side, the state
// directory's life cycle and the launcher's own confinement.
#include <dirent.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "device-procs/device_kind.h"
#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

// Every role of a VM: the core and each process role of the device table (devices, helpers).
std::vector<std::string> all_roles() {
  std::vector<std::string> roles = {"bh-core"};
  for (const devices::ProcessRole& role : devices::process_roles()) roles.push_back(role.process_name);
  return roles;
}

// Processes that serve a device rather than being one (bh-slirp).
bool is_helper(const std::string& process_name) {
  for (const devices::DeviceKind* kind : devices::device_table())
    for (const devices::ProcessRole* helper : kind->helper_roles)
      if (helper->process_name == process_name) return true;
  return false;
}

// The roles in the host's network namespace (bh-slirp), whose root holds /etc/resolv.conf.
bool on_host_network(const std::string& process_name) {
  for (const devices::ProcessRole& role : devices::process_roles())
    if (role.process_name == process_name) return role.host_network;
  return false;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Where /proc/<pid>/<link> points: a namespace ("mnt:[4026531832]"), a file.
std::string link_target(pid_t pid, const std::string& link) {
  char target[256] = {};
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/" + link).c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "";
}

std::string ns_of(pid_t pid, const std::string& ns) { return link_target(pid, "ns/" + ns); }

// The names in a directory (without . and ..); {"?"} if it cannot be read.
std::set<std::string> entries(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (!d) return {"?"};
  std::set<std::string> names;
  while (dirent* e = ::readdir(d))
    if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") names.insert(e->d_name);
  ::closedir(d);
  return names;
}

bool directory_is_empty(const std::string& path) { return entries(path).empty(); }

class ConfinementTest : public VmTest {
 protected:
  void SetUp() override {
    VmTest::SetUp();
    if (IsSkipped()) return;
    if (::geteuid() != 0) GTEST_SKIP() << "confinement needs root (per-VM uid, namespaces); this test runs as uid " << ::geteuid();
  }
  // A VM with every role present (each kind's example arguments from the device table); the
  // echo scenario keeps it up until it is stopped.
  std::vector<std::string> vm_args(const std::string& name, std::vector<std::string> extra = {},
                                   const std::string& scenario = "echo") {
    std::vector<std::string> args = {"--cmdline", scenario, "--name", name, "--state-dir", dir_.file(name)};
    std::string own = dir_.file(name + "-devices");
    ::mkdir(own.c_str(), 0755);
    for (const devices::DeviceKind* kind : devices::device_table()) {
      if (kind->executable.empty() || kind->name == "serial") continue;  // the console stays on stdio
      for (std::string arg : kind->example) {
        size_t at = arg.find("{dir}");
        if (at != std::string::npos) arg.replace(at, 5, own);
        args.push_back(arg);
      }
    }
    for (const std::string& arg : args) {  // images the examples name ("PATH.img[,options]")
      const std::string path = arg.substr(0, arg.find(','));
      if (path.rfind(own + "/", 0) == 0 && path.size() > 4 && path.substr(path.size() - 4) == ".img")
        std::ofstream(path, std::ios::binary) << std::string(1 << 20, '\0');
    }
    args.insert(args.end(), extra.begin(), extra.end());
    return run_args(args);
  }
  // Runs a VM whose `role` attempts `call` once confined; returns its stderr.
  std::string run_selftest(const std::string& spec, int* status) {
    Subprocess vm(vm_args("selftest", {"--selftest", spec}, "hello"), false);
    *status = vm.wait(60s);
    return vm.err();
  }
  TempDir dir_;
};

TEST_F(ConfinementTest, EveryProcessIsConfined) {
  Subprocess vm(vm_args("confined"), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  std::string uid = read_text(dir_.file("confined/uid"));
  ASSERT_FALSE(uid.empty()) << "the state directory records the VM's uid";
  uid.pop_back();
  std::map<std::string, pid_t> roles = roles_of(vm.pid());
  ASSERT_EQ(roles.size(), all_roles().size()) << vm.err();
  for (const std::string& role : all_roles()) {
    SCOPED_TRACE(role);
    ASSERT_TRUE(roles.count(role));
    pid_t pid = roles[role];
    EXPECT_EQ(proc_status(pid, "Seccomp"), "2");
    EXPECT_EQ(proc_status(pid, "NoNewPrivs"), "1");
    EXPECT_EQ(proc_status(pid, "CapEff"), "0000000000000000");
    EXPECT_EQ(proc_status(pid, "CapPrm"), "0000000000000000");
    EXPECT_EQ(proc_status(pid, "CapBnd"), "0000000000000000");
    EXPECT_EQ(proc_status(pid, "Uid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
    EXPECT_EQ(proc_status(pid, "Gid"), uid + "\t" + uid + "\t" + uid + "\t" + uid);
    EXPECT_EQ(proc_status(pid, "Groups"), "");
    for (const char* ns : {"mnt", "pid", "net", "ipc", "uts", "cgroup"})
      EXPECT_NE(ns_of(pid, ns), ns_of(vm.pid(), ns)) << ns << " namespace shared with the launcher";
    std::string root = "/proc/" + std::to_string(pid) + "/root/";
    if (on_host_network(role)) {
      EXPECT_EQ(ns_of(pid, "net"), ns_of(::getpid(), "net")) << "user-mode networking works in the host's network";
      EXPECT_NE(read_text(root + "etc/resolv.conf").find("nameserver"), std::string::npos) << "it has the host's DNS servers";
      EXPECT_EQ(entries(root), std::set<std::string>{"etc"}) << "nothing else of the host's";
      EXPECT_EQ(entries(root + "etc"), std::set<std::string>{"resolv.conf"}) << "nothing else of the host's /etc";
    } else {
      EXPECT_TRUE(directory_is_empty(root)) << "the root is empty";
      EXPECT_NE(ns_of(pid, "net"), ns_of(::getpid(), "net")) << "no network of the host's";
    }
    for (int fd : {0, 1}) EXPECT_EQ(link_target(pid, "fd/" + std::to_string(fd)), "/dev/null") << "fd " << fd;
    EXPECT_NE(read_text("/proc/" + std::to_string(pid) + "/limits").find("Max core file size        0"), std::string::npos);
    for (const auto& [other, other_pid] : roles) {
      if (other == role) continue;
      EXPECT_NE(ns_of(pid, "mnt"), ns_of(other_pid, "mnt")) << "shares a mount namespace with " << other;
    }
  }
  // The launcher itself: the VM's uid as real uid (to signal its processes), no capabilities.
  EXPECT_EQ(proc_status(vm.pid(), "Seccomp"), "2");
  EXPECT_EQ(proc_status(vm.pid(), "NoNewPrivs"), "1");
  EXPECT_EQ(proc_status(vm.pid(), "CapEff"), "0000000000000000");
  EXPECT_EQ(proc_status(vm.pid(), "CapBnd"), "0000000000000000");
  EXPECT_EQ(proc_status(vm.pid(), "Uid").substr(0, uid.size() + 1), uid + "\t");
  for (const char* ns : {"mnt", "net", "ipc", "uts", "cgroup"})
    EXPECT_NE(ns_of(vm.pid(), ns), ns_of(::getpid(), ns)) << "the launcher's " << ns << " namespace";
  EXPECT_TRUE(directory_is_empty("/proc/" + std::to_string(vm.pid()) + "/root/"));

  vm.write_stdin("ping\n");
  EXPECT_TRUE(vm.wait_for("ping", 30s)) << "the confined VM still works: " << vm.err();
  vm.signal(SIGTERM);
  EXPECT_EQ(vm.wait(30s), 128 + SIGTERM) << vm.err();
  EXPECT_NE(::access(dir_.file("confined").c_str(), F_OK), 0) << "the confined launcher removed the state directory";
}

// The calls the issue names, each attempted by a confined role after its seccomp filter is on.
TEST_F(ConfinementTest, ForbiddenSystemCallsKillEveryRole) {
  const char* calls[] = {"open", "socket", "execve", "ptrace", "kill=1", "mount", "ioctl", "process_vm_readv",
                         "bpf", "userfaultfd", "exec-mmap"};
  std::vector<std::pair<std::string, std::string>> roles = {{"core", "bh-core"}};  // policy, process
  for (const devices::ProcessRole& r : devices::process_roles()) roles.push_back({r.policy, r.process_name});
  for (const auto& [role, process] : roles) {
    for (std::string call : calls) {
      // User-mode networking makes IPv4 and IPv6 sockets and reads its /etc/resolv.conf: any
      // other socket family and any file opened for writing kill it (and the open of another
      // file fails: LayersBelowSeccompDenyFilesProcessesAndPrivileges).
      if (call == "socket" && on_host_network(process)) call = "socket=packet";
      if (call == "open" && on_host_network(process)) call = "create";
      SCOPED_TRACE(role + " " + call);
      std::string killed = " was killed by signal 31 (Bad system call)";
      int status = 0;
      std::string err;
      if (is_helper(process)) {
        // A helper's death leaves its NIC without a network, says so, and the VM runs on.
        Subprocess vm(vm_args("selftest", {"--selftest", role + ":post:" + call}), true);
        EXPECT_TRUE(vm.wait_for(process + killed, 30s, true)) << vm.err();
        vm.signal(SIGTERM);
        EXPECT_EQ(vm.wait(30s), 128 + SIGTERM) << vm.err();
        err = vm.err();
      } else {
        // A device that dies before the core has attached it ends the VM (later, a virtio
        // device's process would be restarted: RecoveryTest).
        err = run_selftest(role + ":post:" + call, &status);
        EXPECT_EQ(status, 1) << err;
        EXPECT_NE(err.find(process + (process == "bh-core" ? "" : " (")), std::string::npos) << err;
        EXPECT_NE(err.find(killed), std::string::npos) << err;
      }
      EXPECT_EQ(err.find("selftest post:"), std::string::npos) << "the call returned instead of killing: " << err;
    }
  }
  EXPECT_TRUE(wait_for_no_role_processes().empty());
}

TEST_F(ConfinementTest, TrapModeNamesTheCallBeforeDying) {
  Subprocess vm(vm_args("trap", {"--seccomp", "trap", "--selftest", "serial:post:socket"}), false);
  EXPECT_EQ(vm.wait(60s), 1);
  EXPECT_NE(vm.err().find("bh-serial: seccomp: forbidden system call 41 (socket)"), std::string::npos) << vm.err();
  EXPECT_NE(vm.err().find("bh-serial (serial0) was killed by signal 31"), std::string::npos) << vm.err();
}

// Without seccomp (the "pre" stage), the other layers alone already deny what a role must not do.
TEST_F(ConfinementTest, LayersBelowSeccompDenyFilesProcessesAndPrivileges) {
  int status = 0;
  std::string err = run_selftest("virtio-scsi:pre:open=" + bin_dir() + "/bulkhead", &status);
  EXPECT_NE(err.find("selftest pre:open returned -1 errno=2"), std::string::npos) << "no file is reachable: " << err;
  err = run_selftest("serial:pre:kill=" + std::to_string(::getpid()), &status);
  EXPECT_NE(err.find("selftest pre:kill returned -1 errno=3"), std::string::npos) << "no outside pid is visible: " << err;
  err = run_selftest("core:pre:mount", &status);
  EXPECT_NE(err.find("selftest pre:mount returned -1 errno=1"), std::string::npos) << "no capability left: " << err;
  EXPECT_EQ(status, 0) << "the VM runs on after its self-tests: " << err;
  // bh-slirp may open files read-only (its /etc/resolv.conf), with seccomp on: nothing else is there.
  err = run_selftest("slirp:post:open=" + bin_dir() + "/bulkhead,slirp:post:open=/etc/passwd", &status);
  EXPECT_NE(err.find("bh-slirp: selftest post:open returned -1 errno=2"), std::string::npos) << err;
  EXPECT_EQ(err.find("returned 3"), std::string::npos) << "no descriptor came back: " << err;
  EXPECT_EQ(status, 0) << err;
}

TEST_F(ConfinementTest, TwoVmsCannotReachEachOther) {
  Subprocess b(vm_args("vm-b", {"--serial", "unix=" + dir_.file("b.console")}), true);
  std::map<std::string, pid_t> b_roles;
  for (int i = 0; i < 100 && b_roles.size() < all_roles().size(); ++i) {
    ::usleep(50000);
    b_roles = roles_of(b.pid());
  }
  ASSERT_EQ(b_roles.size(), all_roles().size()) << b.err();
  std::string b_image = dir_.file("vm-b-devices/disk.img");
  std::string b_scsi = std::to_string(b_roles["bh-virtio-scsi"]);
  std::string b_core = std::to_string(b_roles["bh-core"]);
  // Each self-test runs after every layer but seccomp, in VM A's roles.
  Subprocess a(vm_args("vm-a", {"--selftest", "virtio-scsi:pre:open=" + b_image, "--selftest",
                                "virtio-scsi:pre:kill=" + b_scsi, "--selftest", "serial:pre:kill=" + b_core,
                                "--selftest", "serial:pre:connect=" + dir_.file("b.console"), "--selftest",
                                "core:pre:open=/proc/" + b_core + "/mem"}),
               true);
  ASSERT_TRUE(a.wait_for("BH-READY echo", 60s)) << a.err();
  EXPECT_NE(a.err().find("bh-virtio-scsi: selftest pre:open returned -1 errno=2"), std::string::npos) << a.err();
  EXPECT_NE(a.err().find("bh-virtio-scsi: selftest pre:kill returned -1 errno=3"), std::string::npos) << a.err();
  EXPECT_NE(a.err().find("bh-serial: selftest pre:kill returned -1 errno=3"), std::string::npos) << a.err();
  EXPECT_NE(a.err().find("bh-serial: selftest pre:connect returned -1 errno=2"), std::string::npos) << a.err();
  EXPECT_NE(a.err().find("bh-core: selftest pre:open returned -1 errno=2"), std::string::npos) << a.err();
  // Distinct users too, so DAC would stop them even where a path were reachable.
  std::map<std::string, pid_t> a_roles = roles_of(a.pid());
  ASSERT_TRUE(a_roles.count("bh-virtio-scsi"));
  EXPECT_NE(proc_status(a_roles["bh-virtio-scsi"], "Uid"), proc_status(b_roles["bh-virtio-scsi"], "Uid"));
  EXPECT_TRUE(b.running()) << "VM B is unharmed: " << b.err();
  a.signal(SIGTERM);
  b.signal(SIGTERM);
  EXPECT_EQ(a.wait(30s), 128 + SIGTERM);
  EXPECT_EQ(b.wait(30s), 128 + SIGTERM);
}

TEST_F(ConfinementTest, ANameInUseIsRefused) {
  Subprocess first(vm_args("twin"), true);
  ASSERT_TRUE(first.wait_for("BH-READY echo", 60s)) << first.err();
  Subprocess second(run_args({"--cmdline", "hello", "--name", "twin", "--state-dir", dir_.file("twin")}), false);
  EXPECT_EQ(second.wait(30s), 2);
  EXPECT_NE(second.err().find("a VM named 'twin' is already running"), std::string::npos) << second.err();
  EXPECT_TRUE(first.running());
  first.signal(SIGTERM);
  first.wait(30s);
}

TEST_F(ConfinementTest, NoSandboxWarnsAndRunsUnconfined) {
  Subprocess vm(run_args({"--no-sandbox", "--cmdline", "echo"}), true);
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.err();
  EXPECT_NE(vm.err().find("bulkhead: WARNING: --no-sandbox"), std::string::npos) << vm.err();
  for (const auto& [role, pid] : roles_of(vm.pid())) EXPECT_EQ(proc_status(pid, "Seccomp"), "0") << role;
  vm.signal(SIGTERM);
  vm.wait(30s);
}

TEST_F(ConfinementTest, ExplicitCgroupParentFailsClearlyWithoutCgroupV2Controllers) {
  Subprocess vm(vm_args("cgroup", {"--cgroup-parent", "bulkhead-test"}, "hello"), false);
  int status = vm.wait(60s);
  if (status == 2) {
    EXPECT_NE(vm.err().find("bulkhead: error: --cgroup-parent bulkhead-test: "), std::string::npos) << vm.err();
    EXPECT_NE(::access(dir_.file("cgroup").c_str(), F_OK), 0) << "nothing is left behind";
  } else {
    // A host with delegated cgroup v2 controllers: the VM ran inside its group.
    EXPECT_EQ(status, 0) << vm.err();
  }
}

}  // namespace
}  // namespace bulkhead::test
