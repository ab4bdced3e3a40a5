#include "policy/confine.h"

#include <cap-ng.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "common/unique_fd.h"
#include "common/log.h"
#include "policy/seccomp_policy.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_restrict_self 446
#endif

namespace bulkhead::policy {

namespace {

// Landlock ABI constants up to ABI 6 (Debian 12's headers stop at ABI 2).
constexpr uint32_t kLandlockCreateRulesetVersion = 1u << 0;
constexpr uint64_t kFsAbi1 = (1ull << 13) - 1;  // execute ... make_sym
constexpr uint64_t kFsRefer = 1ull << 13, kFsTruncate = 1ull << 14, kFsIoctlDev = 1ull << 15;
constexpr uint64_t kNetBindTcp = 1ull << 0, kNetConnectTcp = 1ull << 1;
constexpr uint64_t kScopeAbstractUnixSocket = 1ull << 0, kScopeSignal = 1ull << 1;

struct LandlockRulesetAttr {
  uint64_t handled_access_fs;
  uint64_t handled_access_net;  // ABI 4
  uint64_t scoped;              // ABI 6
};

// The empty root, holding only `files` (read-only like the rest).
void empty_root(const google::protobuf::RepeatedPtrField<ipc::Confinement::RootFile>& files = {}) {
  // A mount namespace of our own (nested in the one the launcher gave a role), so that the
  // calls below can never touch the host's mounts.
  if (::unshare(CLONE_NEWNS) != 0) throw_errno("unshare(CLONE_NEWNS)");
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) throw_errno("making mounts private");
  std::string options = files.empty() ? "size=4k,nr_inodes=4,mode=0555"
                                      : "size=64k,nr_inodes=" + std::to_string(4 + 4 * files.size()) + ",mode=0555";
  if (::mount("bulkhead-root", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, options.c_str()) != 0)
    throw_errno("mounting the empty root");
  if (::chdir("/tmp") != 0) throw_errno("chdir to the empty root");
  // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only ours.
  if (::syscall(SYS_pivot_root, ".", ".") == 0) {
    if (::umount2(".", MNT_DETACH) != 0) throw_errno("detaching the old root");
  } else if (errno == EINVAL) {
    // The root is the initramfs (rootfs), which cannot be pivoted away: move the empty root
    // over it and chroot into it, as switch_root does. The old root stays beneath, unreachable
    // by any path (and CAP_SYS_CHROOT goes with the other capabilities below).
    if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) throw_errno("moving the empty root over rootfs");
    if (::chroot(".") != 0) throw_errno("chroot");
  } else {
    throw_errno("pivot_root");
  }
  if (::chdir("/") != 0) throw_errno("chdir /");
  for (const auto& file : files) {
    // Creating each file (and its directory) in our own fresh tmpfs, before it turns read-only.
    std::string path = file.path();
    if (path.empty() || path[0] != '/' || path.find("..") != std::string::npos) throw InputError("root file path " + path);
    for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1))
      if (::mkdir(path.substr(0, slash).c_str(), 0555) != 0 && errno != EEXIST) throw_errno("mkdir for " + path);
    UniqueFd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!out || ::write(out.get(), file.content().data(), file.content().size()) != static_cast<ssize_t>(file.content().size()))
      throw_errno("writing " + path);
  }
  if (::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    throw_errno("remounting the root read-only");
  ::sethostname("bulkhead", 8);  // our own UTS namespace
}

void drop_identity(uint32_t uid, uint32_t gid) {
  capng_clear(CAPNG_SELECT_BOTH);
  int rc = capng_change_id(static_cast<int>(uid), static_cast<int>(gid),
                           static_cast<capng_flags_t>(CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING));
  if (rc != 0) throw InputError("capng_change_id to uid " + std::to_string(uid) + " failed (" + std::to_string(rc) + ")");
  // capng_lock sets the securebits and no_new_privs; check no_new_privs ourselves too.
  capng_lock();
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
    throw_errno("setting no_new_privs");
  if (capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE) throw InputError("capabilities remain after dropping them");
}

void set_limit(int resource, rlim_t value, const char* what) {
  rlimit limit{value, value};
  // setrlimit on ourselves; lowering never needs privileges.
  if (::setrlimit(resource, &limit) != 0) throw_errno(std::string("setrlimit ") + what);
}

struct LandlockPathBeneath {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));
constexpr uint64_t kFsReadFile = 1ull << 2, kFsRemoveDir = 1ull << 4, kFsRemoveFile = 1ull << 5;
constexpr int kLandlockRulePathBeneath = 1;

#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif

// No filesystem access except removing entries beneath `removable` directories and reading
// the `readable` files; signals outside the process are scoped away unless `may_signal` (the
// supervisor kills its roles); no TCP unless `host_network`.
void restrict_landlock(const std::vector<int>& removable = {}, bool may_signal = false,
                       const std::vector<int>& readable = {}, bool host_network = false) {
  int abi = landlock_abi();
  if (abi <= 0) {
    spdlog::info("Landlock is not available on this kernel; relying on the empty root and seccomp");
    return;
  }
  LandlockRulesetAttr attr{};
  attr.handled_access_fs = kFsAbi1;
  if (abi >= 2) attr.handled_access_fs |= kFsRefer;
  if (abi >= 3) attr.handled_access_fs |= kFsTruncate;
  if (abi >= 5) attr.handled_access_fs |= kFsIoctlDev;
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    attr.handled_access_net = host_network ? 0 : kNetBindTcp | kNetConnectTcp;
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = kScopeAbstractUnixSocket | (may_signal ? 0 : kScopeSignal);
    size = sizeof attr;
  }
  // A ruleset handling every right this ABI knows; only the removals below are granted.
  int fd = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0));
  if (fd < 0) throw_errno("landlock_create_ruleset");
  UniqueFd ruleset(fd);
  for (int dir : removable) {
    LandlockPathBeneath rule{kFsRemoveDir | kFsRemoveFile, dir};
    // Adds a rule for a directory descriptor we hold.
    if (::syscall(SYS_landlock_add_rule, ruleset.get(), kLandlockRulePathBeneath, &rule, 0) != 0)
      throw_errno("landlock_add_rule");
  }
  for (int file : readable) {
    LandlockPathBeneath rule{kFsReadFile, file};
    // Adds a read rule for a file descriptor (O_PATH) we hold.
    if (::syscall(SYS_landlock_add_rule, ruleset.get(), kLandlockRulePathBeneath, &rule, 0) != 0)
      throw_errno("landlock_add_rule");
  }
  if (::syscall(SYS_landlock_restrict_self, ruleset.get(), 0) != 0) throw_errno("landlock_restrict_self");
}

#ifdef BULKHEAD_SELFTEST_HOOKS
long connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  // A throw-away socket connecting to `path`, closed again; a forbidden attempt in a self-test.
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fd;
  long r = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return r;
}

// Tries each "stage:call[=arg]" of `spec` that belongs to `stage`, reporting what happened
// (if the process survives it).
void selftest(const std::string& spec, const std::string& stage, const std::string& role) {
  std::stringstream items(spec);
  for (std::string item; std::getline(items, item, ',');) {
    if (item.rfind(stage + ":", 0) != 0) continue;
    std::string call = item.substr(stage.size() + 1), arg;
    if (auto eq = call.find('='); eq != std::string::npos) arg = call.substr(eq + 1), call.resize(eq);
    long r = -1;
    errno = 0;
    // Deliberately forbidden system calls, each with harmless arguments.
    if (call == "open") r = ::open(arg.empty() ? "/etc/passwd" : arg.c_str(), O_RDONLY | O_CLOEXEC);
    else if (call == "create") r = ::open("/created", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    else if (call == "socket") r = ::socket(arg == "packet" ? AF_PACKET : AF_INET, arg == "packet" ? SOCK_RAW : SOCK_STREAM, 0);
    else if (call == "connect") r = connect_unix(arg);
    else if (call == "execve") r = ::execl("/bin/true", "true", nullptr);
    else if (call == "ptrace") r = ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    else if (call == "kill") r = ::kill(arg.empty() ? 1 : std::stoi(arg), 0);
    else if (call == "mount") r = ::mount("none", "/", "tmpfs", 0, nullptr);
    else if (call == "ioctl") r = ::ioctl(STDERR_FILENO, TIOCSTI, "x");
    else if (call == "process_vm_readv") r = ::syscall(SYS_process_vm_readv, 1, nullptr, 0, nullptr, 0, 0);
    else if (call == "bpf") r = ::syscall(SYS_bpf, 0, nullptr, 0);
    else if (call == "userfaultfd") r = ::syscall(SYS_userfaultfd, 0);
    else if (call == "kexec_load") r = ::syscall(SYS_kexec_load, 0, 0, nullptr, 0);
    else if (call == "exec-mmap") r = reinterpret_cast<long>(::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    else continue;
    std::fprintf(stderr, "%s: selftest %s:%s returned %ld errno=%d (%s)\n", role.c_str(), stage.c_str(), call.c_str(), r,
                 errno, std::strerror(errno));
  }
}
#else
void selftest(const std::string&, const std::string&, const std::string&) {}
#endif

// LeakSanitizer's end-of-process check stops the world with ptrace and reads /proc, which a
// confined process can do neither of: in sanitizer builds, leaks are checked once, before
// confinement starts.
void check_leaks_before_confinement() {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_do_leak_check();
#endif
}

}  // namespace

void confine_supervisor(const SupervisorConfinement& c) {
  std::vector<Rule> rules = load_policy("supervisor");
  check_leaks_before_confinement();
  // Like its roles, the supervisor leaves the host's ipc, uts, network and cgroup namespaces
  // (the mount namespace follows in empty_root). It has no children left to start, so a pid
  // namespace would change nothing.
  if (::unshare(CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP) != 0) throw_errno("unshare");
  empty_root();
  set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
  // Supplementary groups go; the real uid becomes the VM's (see confine.h).
  if (::setgroups(0, nullptr) != 0) throw_errno("setgroups");
  if (::setresuid(c.vm_uid, 0, 0) != 0) throw_errno("setresuid");
  capng_clear(CAPNG_SELECT_BOTH);
  if (c.keep_fowner)
    capng_update(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET), CAP_FOWNER);
  if (capng_apply(CAPNG_SELECT_BOTH) != 0) throw InputError("dropping the supervisor's capabilities failed");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("setting no_new_privs");
  restrict_landlock(c.removable_dirs, true);
  install_seccomp(rules, c.violation == ipc::Confinement::TRAP ? Violation::kTrap : Violation::kKill, "bulkhead");
}

int landlock_abi() {
  // With LANDLOCK_CREATE_RULESET_VERSION the call only reports the ABI version.
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kLandlockCreateRulesetVersion);
  return abi < 0 ? 0 : static_cast<int>(abi);
}

void confine(const ipc::Confinement& c, const std::string& policy, const std::string& role) {
  if (!c.enabled()) return;
  std::vector<Rule> rules = load_policy(policy);  // parsed while memory allocation is still free
  check_leaks_before_confinement();
  empty_root(c.root_files());
  std::vector<UniqueFd> readable;
  std::vector<int> readable_fds;
  for (const auto& file : c.root_files()) {
    // An O_PATH handle on a file we just created, for its Landlock read rule.
    readable.emplace_back(::open(file.path().c_str(), O_PATH | O_CLOEXEC));
    if (!readable.back()) throw_errno("opening " + file.path());
    readable_fds.push_back(readable.back().get());
  }
  set_limit(RLIMIT_NOFILE, c.max_open_files() ? c.max_open_files() : 1024, "RLIMIT_NOFILE");
  set_limit(RLIMIT_FSIZE, c.max_file_size(), "RLIMIT_FSIZE");
  set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
  drop_identity(c.uid(), c.gid());
  restrict_landlock({}, false, readable_fds, c.host_network());
  readable.clear();
  selftest(c.selftest(), "pre", role);
  install_seccomp(rules, c.violation() == ipc::Confinement::TRAP ? Violation::kTrap : Violation::kKill, role);
  selftest(c.selftest(), "post", role);
}

}  // namespace bulkhead::policy
