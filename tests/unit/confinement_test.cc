// The parts of confinement that need no VM: the seccomp policy files, the restricted
// io_uring, VM identities (uids, state directories), category pairs, labels and cgroups.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>

#include "common/error.h"
#include "device-procs/common/block_backend.h"
#include "launcher/cgroup.h"
#include "launcher/resources.h"
#include "launcher/svirt.h"
#include "launcher/vm_identity.h"
#include "policy/seccomp_policy.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

using launcher::IdentityRequest;
using launcher::VmIdentity;

std::set<std::string> syscalls_of(const std::string& role) {
  std::set<std::string> names;
  for (const policy::Rule& r : policy::load_policy(role))
    if (r.kind != policy::Rule::Kind::kErrno) names.insert(r.syscall);
  return names;
}

TEST(SeccompPolicyTest, EveryRolePolicyCompilesAndIncludesTheCommonBase) {
  std::set<std::string> common = syscalls_of("common");
  for (const char* role : {"core", "serial", "virtio-scsi", "supervisor"}) {
    std::set<std::string> names = syscalls_of(role);
    EXPECT_TRUE(std::includes(names.begin(), names.end(), common.begin(), common.end())) << role;
    EXPECT_GT(policy::allowed_syscall_count(policy::load_policy(role)), common.size() - 1) << role;
  }
}

TEST(SeccompPolicyTest, DevicesMayNotOpenConnectExecTraceOrMount) {
  const char* forbidden[] = {"open", "openat", "openat2", "creat", "socket", "connect", "bind", "execve", "execveat",
                             "ptrace", "process_vm_readv", "process_vm_writev", "kexec_load", "kexec_file_load",
                             "bpf", "userfaultfd", "mount", "umount2", "pivot_root", "chroot", "setuid", "unshare",
                             "setns", "kill", "init_module", "perf_event_open", "fork", "vfork"};
  for (const char* role : {"core", "serial", "virtio-scsi", "supervisor"}) {
    std::set<std::string> names = syscalls_of(role);
    for (const char* call : forbidden) EXPECT_EQ(names.count(call), role == std::string("supervisor") && call == std::string("kill") ? 1u : 0u) << role << " allows " << call;
  }
}

// A host whose clocksource has no vDSO support (an unstable TSC: hpet, acpi_pm) turns every
// clock read into a system call; a role must survive that. Each role's real filter is
// installed in a child, which then reads the clocks with the system calls themselves.
TEST(SeccompPolicyTest, EveryRoleMayReadTheClocksWithoutTheVdso) {
  for (const char* role : {"core", "serial", "ide", "virtio-scsi", "virtio-net", "slirp", "e1000", "virtio-balloon", "supervisor"}) {
    std::vector<policy::Rule> rules = policy::load_policy(role);
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);  // lets an unprivileged test install the filter
      policy::install_seccomp(rules, policy::Violation::kKill, role);
      struct timespec now;
      struct timeval tv;
      // Raw system calls on purpose: the vDSO would answer these without entering the kernel.
      bool ok = ::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &now) == 0 && ::syscall(SYS_gettimeofday, &tv, nullptr) == 0 &&
                ::syscall(SYS_time, nullptr) > 0;
      ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << role << ": " << (WIFSIGNALED(status) ? std::string("killed by signal ") + std::to_string(WTERMSIG(status)) : "the calls failed");
  }
}

TEST(SeccompPolicyTest, KvmIoctlsOnlyInTheCore) {
  auto ioctl_values = [](const std::string& role) {
    std::set<uint64_t> values;
    for (const policy::Rule& r : policy::load_policy(role))
      if (r.syscall == "ioctl") {
        EXPECT_EQ(r.kind, policy::Rule::Kind::kAllowIfIn) << role << ": ioctl must be filtered by request";
        values.insert(r.values.begin(), r.values.end());
      }
    return values;
  };
  constexpr uint64_t kKvmRun = 0xae80;  // _IO(KVMIO, 0x80)
  EXPECT_TRUE(ioctl_values("core").count(kKvmRun));
  for (const char* role : {"serial", "virtio-scsi", "supervisor"}) {
    for (uint64_t v : ioctl_values(role)) EXPECT_NE((v >> 8) & 0xff, 0xaeu) << role << " may issue KVM ioctl " << std::hex << v;
  }
}

TEST(SeccompPolicyTest, ExecutableMappingsAreRefused) {
  for (const char* role : {"core", "serial", "virtio-scsi", "supervisor"})
    for (const policy::Rule& r : policy::load_policy(role))
      if (r.syscall == "mmap" || r.syscall == "mprotect") {
        EXPECT_EQ(r.kind, policy::Rule::Kind::kAllowIfNone) << role;
        EXPECT_EQ(r.arg, 2u);
      }
}

TEST(SeccompPolicyTest, MalformedRulesNameFileAndLine) {
  auto error_of = [](const std::string& text) {
    try {
      policy::parse_policy("test", text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("read\nnot_a_syscall\n").find("test.policy:2: unknown system call not_a_syscall"), std::string::npos);
  EXPECT_NE(error_of("ioctl arg1 in NOT_A_CONSTANT").find("unknown constant NOT_A_CONSTANT"), std::string::npos);
  EXPECT_NE(error_of("ioctl arg9 in TCGETS").find("test.policy:1"), std::string::npos);
  EXPECT_NE(error_of("clone3 errno EWHATEVER").find("unknown errno"), std::string::npos);
  EXPECT_NE(error_of("@include no_such_policy").find("no_such_policy"), std::string::npos);
  EXPECT_EQ(error_of("# comment only\n\nread # trailing comment\n"), "no error");
  auto rules = policy::parse_policy("test", "fcntl arg1 in F_GETFL F_SETFL\nclone3 errno ENOSYS\n");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].values.size(), 2u);
  EXPECT_EQ(rules[1].error, ENOSYS);
}

TEST(RestrictedRingTest, OnlyReadWriteSyncAndDiscardOnTheRegisteredImage) {
  TempDir dir;
  UniqueFd image(::open(dir.file("image").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  ASSERT_TRUE(image);
  ASSERT_EQ(::ftruncate(image.get(), 8192), 0);
  UniqueFd other(::open(dir.file("other").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  io_uring ring;
  int r = io_uring_queue_init(8, &ring, IORING_SETUP_R_DISABLED);
  if (r == -ENOSYS || r == -EPERM) GTEST_SKIP() << "io_uring is not available here: " << strerror(-r);
  ASSERT_EQ(r, 0);
  device::restrict_ring_to_file(ring, image.get());

  auto run = [&](auto prepare) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    prepare(sqe);
    EXPECT_EQ(io_uring_submit(&ring), 1);
    io_uring_cqe* cqe;
    EXPECT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
    int res = cqe->res;
    io_uring_cqe_seen(&ring, cqe);
    return res;
  };
  char buffer[512] = {};
  iovec iov{buffer, sizeof buffer};
  EXPECT_EQ(run([&](io_uring_sqe* s) {
              io_uring_prep_readv(s, device::kImageSlot, &iov, 1, 0);
              s->flags |= IOSQE_FIXED_FILE;
            }),
            512)
      << "reading the image is allowed";
  EXPECT_EQ(run([&](io_uring_sqe* s) { io_uring_prep_readv(s, other.get(), &iov, 1, 0); }), -EACCES)
      << "a descriptor that is not the registered image";
  EXPECT_EQ(run([&](io_uring_sqe* s) { io_uring_prep_openat(s, AT_FDCWD, "/etc/passwd", O_RDONLY, 0); }), -EACCES)
      << "opening files from the ring";
  EXPECT_EQ(run([&](io_uring_sqe* s) { io_uring_prep_socket(s, AF_INET, SOCK_STREAM, 0, 0); }), -EACCES)
      << "sockets from the ring";
  int again = other.get();
  EXPECT_LT(io_uring_register_files_update(&ring, 0, &again, 1), 0) << "swapping the registered file";
  EXPECT_LT(io_uring_register_eventfd(&ring, again), 0) << "any other registration";
  EXPECT_EQ(io_uring_unregister_files(&ring), 0) << "unregistering the image, at exit";
  io_uring_queue_exit(&ring);
}

TEST(McsPairTest, TwoDistinctCategoriesInOrderAndNeverAReservedPair) {
  uint32_t sequence[] = {7, 7, 900, 12, 12, 900, 5, 3};
  size_t next = 0;
  auto random = [&] { return sequence[next++ % std::size(sequence)]; };
  // 7,7 is one category (skipped); 900,12 is "s0:c12,c900" (ordered) but reserved; then 12,900 again; then 5,3.
  EXPECT_EQ(launcher::allocate_mcs_pair({"s0:c12,c900"}, random), "s0:c3,c5");
  std::mt19937 generator(1);
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    std::string pair = launcher::allocate_mcs_pair({}, [&] { return static_cast<uint32_t>(generator()); });
    unsigned a, b;
    ASSERT_EQ(std::sscanf(pair.c_str(), "s0:c%u,c%u", &a, &b), 2) << pair;
    EXPECT_LT(a, b);
    EXPECT_LT(b, 1024u);
    seen.insert(pair);
  }
  EXPECT_GT(seen.size(), 1900u) << "pairs are spread over the whole space";
}

TEST(SvirtLabelsTest, ContextsCarryTheVmCategories) {
  launcher::SvirtLabels labels("s0:c3,c5");
  EXPECT_EQ(labels.process_context("bulkhead_virtio_scsi_t"), "system_u:system_r:bulkhead_virtio_scsi_t:s0:c3,c5");
  EXPECT_EQ(labels.file_context("bulkhead_image_t"), "system_u:object_r:bulkhead_image_t:s0:c3,c5");
  EXPECT_EQ(labels.file_context("bulkhead_image_ro_t"), "system_u:object_r:bulkhead_image_ro_t:s0")
      << "shared read-only images carry no category";
  EXPECT_EQ(labels.socket_context(), "system_u:object_r:bulkhead_socket_t:s0:c3,c5");
}

TEST(SvirtLabelsTest, ImageLabelIsRestoredAtTheEnd) {
  // Without an active SELinux the kernel stores security.selinux as it is given (see
  // docs/confinement.md), which is enough to check that the original label comes back.
  TempDir dir;
  UniqueFd image(::open(dir.file("image").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  const char original[] = "system_u:object_r:user_home_t:s0";
  if (::fsetxattr(image.get(), "security.selinux", original, sizeof original, 0) != 0)
    GTEST_SKIP() << "this filesystem keeps no security.selinux attribute: " << strerror(errno);
  auto label = [&] {
    char value[256] = {};
    ssize_t n = ::fgetxattr(image.get(), "security.selinux", value, sizeof value - 1);
    return n > 0 ? std::string(value) : std::string();
  };
  {
    launcher::SvirtLabels labels("s0:c1,c2");
    labels.label_file(image.get(), "bulkhead_image_t", "the image");
    EXPECT_EQ(label(), "system_u:object_r:bulkhead_image_t:s0:c1,c2");
  }
  EXPECT_EQ(label(), original);
}

class VmIdentityTest : public ::testing::Test {
 protected:
  IdentityRequest request(const std::string& name) {
    IdentityRequest r;
    r.name = name;
    r.state_dir = root_.file(name);
    return r;
  }
  TempDir root_;
};

TEST_F(VmIdentityTest, StateDirectoryLivesAsLongAsTheVm) {
  std::string dir;
  {
    VmIdentity id = VmIdentity::create(request("alpha"));
    dir = id.state_dir();
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_GE(id.uid(), launcher::kFirstVmUid);
    EXPECT_EQ(id.gid(), id.uid());
    std::ifstream uid(dir + "/uid");
    uint32_t recorded = 0;
    uid >> recorded;
    EXPECT_EQ(recorded, id.uid());
  }
  EXPECT_NE(::access(dir.c_str(), F_OK), 0) << "the state directory is removed with the VM";
}

TEST_F(VmIdentityTest, RunningVmsGetDistinctUidsAndPairs) {
  auto with_pair = [&](const std::string& name) {
    IdentityRequest r = request(name);
    r.choose_mcs = [](const std::vector<std::string>& reserved) { return "s0:c1,c" + std::to_string(reserved.size() + 2); };
    return r;
  };
  VmIdentity a = VmIdentity::create(with_pair("a"));
  VmIdentity b = VmIdentity::create(with_pair("b"));
  EXPECT_NE(a.uid(), b.uid());
  EXPECT_NE(a.mcs(), b.mcs());
  EXPECT_EQ(VmIdentity::reserved_uids(root_.path()).size(), 2u);
  EXPECT_EQ(VmIdentity::reserved_mcs(root_.path()).size(), 2u);
}

// A process of the host's that runs as the first free VM uid (here a child that took it) keeps
// that uid from any VM.
TEST_F(VmIdentityTest, AUidAProcessRunsAsIsNotHandedOut) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a process as a VM uid";
  uint32_t first = VmIdentity::create(request("probe")).uid();
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t squatter = ::fork();
  ASSERT_GE(squatter, 0);
  if (squatter == 0) {
    if (::setresuid(first, first, first) != 0) ::_exit(1);
    ::close(ready[0]);
    ::close(ready[1]);  // tells the test it runs as `first` now
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 0);
  ::close(ready[0]);
  uint32_t given = VmIdentity::create(request("next")).uid();
  ::kill(squatter, SIGKILL);
  ::waitpid(squatter, nullptr, 0);
  EXPECT_NE(given, first) << "uid " << first << " is in use by pid " << squatter;
  EXPECT_EQ(VmIdentity::create(request("after")).uid(), first) << "and free again once that process is gone";
}

TEST_F(VmIdentityTest, ANameInUseIsRefusedAndAStaleOneReplaced) {
  {
    VmIdentity a = VmIdentity::create(request("dup"));
    try {
      VmIdentity::create(request("dup"));
      ADD_FAILURE() << "a second VM with the same name";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("already running"), std::string::npos) << e.what();
    }
  }
  // Launchers that were killed leave their directories; their recorded processes are gone.
  for (const char* name : {"dup", "other"}) {
    ASSERT_EQ(::mkdir(root_.file(name).c_str(), 0700), 0);
    std::ofstream(root_.file(std::string(name) + "/launcher")) << "999999999 1\n";
    std::ofstream(root_.file(std::string(name) + "/uid")) << launcher::kFirstVmUid << "\n";
  }
  ASSERT_EQ(::mkdir(root_.file("not-ours").c_str(), 0700), 0);
  EXPECT_NO_THROW(VmIdentity::create(request("dup")));
  EXPECT_NE(::access(root_.file("other").c_str(), F_OK), 0) << "every stale VM directory is swept";
  EXPECT_EQ(::access(root_.file("not-ours").c_str(), F_OK), 0) << "a directory without a launcher file stays";
}

TEST_F(VmIdentityTest, BadRequestsAreRefused) {
  IdentityRequest r = request("ok");
  r.uid = 0;
  EXPECT_THROW(VmIdentity::create(r), InputError);
  r = request("ok");
  r.gid = 0;
  EXPECT_THROW(VmIdentity::create(r), InputError);
  r = request("ok");
  r.name = "../escape";
  r.state_dir.reset();
  EXPECT_THROW(VmIdentity::create(r), InputError);
  VmIdentity a = VmIdentity::create(request("first"));
  r = request("second");
  r.uid = a.uid();
  EXPECT_THROW(VmIdentity::create(r), InputError) << "a uid another running VM holds";
  ASSERT_EQ(::mkdir(root_.file("full").c_str(), 0700), 0);
  std::ofstream(root_.file("full/data")) << "x";
  EXPECT_THROW(VmIdentity::create(request("full")), InputError) << "a directory with somebody else's files";
  EXPECT_EQ(::access(root_.file("full/data").c_str(), F_OK), 0);
  std::ofstream(root_.file("file")) << "x";
  EXPECT_THROW(VmIdentity::create(request("file")), InputError) << "a state directory that is a file";
}

TEST(VmCgroupTest, LimitsFollowTheGuest) {
  launcher::CgroupLimits l = launcher::limits_for(1ull << 30, 4);
  EXPECT_EQ(l.memory_max, (1ull << 30) + (256ull << 20) + (128ull << 20));
  EXPECT_EQ(l.pids_max, 272u);
  EXPECT_EQ(l.cpu_quota_us, 500000u);
  EXPECT_EQ(l.cpu_period_us, 100000u);
}

TEST(VmCgroupTest, MissingControllersAreExplained) {
  TempDir root;
  std::string why;
  // A directory standing in for a cgroup2 root whose controllers are bound to cgroup v1.
  std::ofstream(root.file("cgroup.controllers")) << "cpuset io\n";
  EXPECT_FALSE(launcher::VmCgroup::create("bulkhead", "vm", launcher::limits_for(1 << 28, 1), &why, root.path()));
  EXPECT_NE(why.find("no memory, cpu and pids controllers"), std::string::npos) << why;
  // Controllers present but not delegated: enabling them for the sub-tree fails.
  std::ofstream(root.file("cgroup.controllers")) << "cpu memory pids\n";
  why.clear();
  EXPECT_FALSE(launcher::VmCgroup::create("deep/parent", "vm", launcher::limits_for(1 << 28, 1), &why, root.path()));
  EXPECT_NE(why.find("not delegated to " + root.path()), std::string::npos) << why;
}

TEST(SocketFileTest, RemovedThroughItsDirectory) {
  TempDir dir;
  std::string path = dir.file("console.sock");
  {
    launcher::UnixListener listener = launcher::listen_unix(path);
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
  }
  EXPECT_NE(::access(path.c_str(), F_OK), 0);
}

}  // namespace
}  // namespace bulkhead::test
