#include "policy/seccomp_policy.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/error.h"
#include "policy/embedded_policies.h"
#include "vmm-core/kvm_abi.h"

namespace bulkhead::policy {

namespace {

// Threads: what glibc's pthread_create passes to clone() once clone3 is refused.
constexpr uint64_t kCloneThreadFlags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM |
                                       CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID;

const std::map<std::string, uint64_t>& constants() {
  static const std::map<std::string, uint64_t> table = {
      {"PROT_EXEC", PROT_EXEC},
      {"O_WRITE_FLAGS", O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND},
      {"F_GETFL", F_GETFL},
      {"F_SETFL", F_SETFL},
      {"F_GETFD", F_GETFD},
      {"F_SETFD", F_SETFD},
      {"F_DUPFD_CLOEXEC", F_DUPFD_CLOEXEC},
      {"F_GET_SEALS", F_GET_SEALS},
      {"F_ADD_SEALS", F_ADD_SEALS},
      {"CLONE_THREAD_FLAGS", kCloneThreadFlags},
      {"SIGKILL", SIGKILL},
      {"SO_PEERCRED", SO_PEERCRED},
      {"PR_SET_NAME", PR_SET_NAME},
      {"PR_GET_NAME", PR_GET_NAME},
      {"TCGETS", TCGETS},
      {"TUNSETOFFLOAD", TUNSETOFFLOAD},
      {"FIONREAD", FIONREAD},
      {"FIONBIO", FIONBIO},
      {"AF_INET", AF_INET},
      {"AF_INET6", AF_INET6},
      {"TCSETS", TCSETS},
      {"TCSETSW", TCSETSW},
      {"KVM_GET_API_VERSION", KVM_GET_API_VERSION},
      {"KVM_CREATE_VM", KVM_CREATE_VM},
      {"KVM_GET_VCPU_MMAP_SIZE", KVM_GET_VCPU_MMAP_SIZE},
      {"KVM_CHECK_EXTENSION", KVM_CHECK_EXTENSION},
      {"KVM_GET_SUPPORTED_CPUID", core::kKvmGetSupportedCpuid},
      {"KVM_GET_MSR_INDEX_LIST", core::kKvmGetMsrIndexList},
      {"KVM_SET_TSS_ADDR", KVM_SET_TSS_ADDR},
      {"KVM_SET_IDENTITY_MAP_ADDR", KVM_SET_IDENTITY_MAP_ADDR},
      {"KVM_CREATE_IRQCHIP", KVM_CREATE_IRQCHIP},
      {"KVM_CREATE_PIT2", KVM_CREATE_PIT2},
      {"KVM_SET_USER_MEMORY_REGION", KVM_SET_USER_MEMORY_REGION},
      {"KVM_CREATE_VCPU", KVM_CREATE_VCPU},
      {"KVM_SET_CPUID2", core::kKvmSetCpuid2},
      {"KVM_SET_MSRS", core::kKvmSetMsrs},
      {"KVM_SET_FPU", KVM_SET_FPU},
      {"KVM_GET_LAPIC", KVM_GET_LAPIC},
      {"KVM_SET_LAPIC", KVM_SET_LAPIC},
      {"KVM_GET_SREGS", KVM_GET_SREGS},
      {"KVM_SET_SREGS", KVM_SET_SREGS},
      {"KVM_GET_REGS", KVM_GET_REGS},
      {"KVM_SET_REGS", KVM_SET_REGS},
      {"KVM_RUN", KVM_RUN},
      {"KVM_IRQFD", KVM_IRQFD},
      {"KVM_IOEVENTFD", KVM_IOEVENTFD},
      {"KVM_SET_GSI_ROUTING", core::kKvmSetGsiRouting},
      {"KVM_SIGNAL_MSI", KVM_SIGNAL_MSI},
      {"KVM_IRQ_LINE", KVM_IRQ_LINE},
      {"KVM_GET_CLOCK", KVM_GET_CLOCK},
      {"KVM_SET_CLOCK", KVM_SET_CLOCK},
      {"CALLING_THREAD", 0},  // pid 0 in sched_setaffinity
  };
  return table;
}

const std::map<std::string, int>& errnos() {
  static const std::map<std::string, int> table = {{"ENOSYS", ENOSYS}, {"EPERM", EPERM}, {"EACCES", EACCES}};
  return table;
}

[[noreturn]] void malformed(const std::string& where, const std::string& what) {
  throw std::invalid_argument("seccomp policy " + where + ": " + what);
}

uint64_t constant(const std::string& name, const std::string& where) {
  auto it = constants().find(name);
  if (it == constants().end()) malformed(where, "unknown constant " + name);
  return it->second;
}

// Names of system calls by number, for the trap handler (which may not allocate).
constexpr int kMaxSyscall = 512;
char g_names[kMaxSyscall][24];
char g_role[32];

void sigsys_handler(int, siginfo_t* info, void*) {
  char line[128];
  int nr = info->si_syscall;
  const char* name = nr >= 0 && nr < kMaxSyscall && g_names[nr][0] ? g_names[nr] : "?";
  int n = snprintf(line, sizeof line, "%s: seccomp: forbidden system call %d (%s)\n", g_role, nr, name);
  // write() and the calls below are async-signal-safe and allowed by every policy.
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line, static_cast<size_t>(n));
  // Now die of SIGSYS. raise() would not do: a role is pid 1 of its namespace, which ignores
  // signals it sends itself. A second forbidden call, with SIGSYS back at its default, makes
  // the kernel force the signal. kexec_load is in no policy (and needs CAP_SYS_BOOT anyway).
  ::signal(SIGSYS, SIG_DFL);
  ::syscall(SYS_kexec_load, 0, 0, nullptr, 0);
  ::_exit(128 + SIGSYS);
}

}  // namespace

std::vector<Rule> parse_policy(std::string_view name, std::string_view text) {
  std::vector<Rule> rules;
  std::istringstream in{std::string(text)};
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::string where = std::string(name) + ".policy:" + std::to_string(number);
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty()) continue;
    if (w[0] == "@include") {
      if (w.size() != 2) malformed(where, "@include takes one policy name");
      auto included = load_policy(w[1]);
      rules.insert(rules.end(), included.begin(), included.end());
      continue;
    }
    Rule rule;
    rule.syscall = w[0];
    rule.where = where;
    if (seccomp_syscall_resolve_name(rule.syscall.c_str()) == __NR_SCMP_ERROR) malformed(where, "unknown system call " + w[0]);
    if (w.size() == 1) {
      rule.kind = Rule::Kind::kAllow;
    } else if (w[1] == "errno" && w.size() == 3) {
      rule.kind = Rule::Kind::kErrno;
      auto it = errnos().find(w[2]);
      if (it == errnos().end()) malformed(where, "unknown errno " + w[2]);
      rule.error = it->second;
    } else if (w[1].rfind("arg", 0) == 0 && w[1].size() == 4 && w[1][3] >= '0' && w[1][3] <= '5' && w.size() >= 4) {
      rule.arg = static_cast<unsigned>(w[1][3] - '0');
      if (w[2] == "in") {
        rule.kind = Rule::Kind::kAllowIfIn;
        for (size_t i = 3; i < w.size(); ++i) rule.values.push_back(constant(w[i], where));
      } else if (w[2] == "has-none" && w.size() == 4) {
        rule.kind = Rule::Kind::kAllowIfNone;
        rule.values.push_back(constant(w[3], where));
      } else {
        malformed(where, "expected 'in' or 'has-none' after " + w[1]);
      }
    } else {
      malformed(where, "cannot parse '" + line + "'");
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

namespace {

std::vector<Rule> load_embedded(std::string_view name) {
  for (size_t i = 0; i < kEmbeddedPolicyCount; ++i)
    if (name == kEmbeddedPolicies[i].name) return parse_policy(name, kEmbeddedPolicies[i].text);
  throw std::invalid_argument("no seccomp policy named " + std::string(name));
}

}  // namespace

std::vector<Rule> load_policy(std::string_view role) {
  std::vector<Rule> rules = load_embedded(role);
#ifdef BULKHEAD_SANITIZER_RUNTIME
  std::vector<Rule> runtime = load_embedded("sanitizer");
  rules.insert(rules.end(), runtime.begin(), runtime.end());
#endif
  return rules;
}

size_t allowed_syscall_count(const std::vector<Rule>& rules) {
  std::set<std::string> names;
  for (const Rule& r : rules)
    if (r.kind != Rule::Kind::kErrno) names.insert(r.syscall);
  return names.size();
}

void install_seccomp(const std::vector<Rule>& rules, Violation violation, const std::string& role) {
  std::snprintf(g_role, sizeof g_role, "%s", role.c_str());
  for (int nr = 0; nr < kMaxSyscall; ++nr) {
    // Resolved before the filter exists: the handler must not call into libseccomp.
    char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    g_names[nr][0] = 0;
    if (name) {
      std::snprintf(g_names[nr], sizeof g_names[nr], "%s", name);
      std::free(name);
    }
  }
  if (violation == Violation::kTrap) {
    struct sigaction sa {};
    sa.sa_sigaction = sigsys_handler;
    sa.sa_flags = SA_SIGINFO;
    if (::sigaction(SIGSYS, &sa, nullptr) != 0) throw_errno("sigaction SIGSYS");
  }
  scmp_filter_ctx ctx = seccomp_init(violation == Violation::kTrap ? SCMP_ACT_TRAP : SCMP_ACT_KILL_PROCESS);
  if (!ctx) throw InputError("seccomp_init failed");
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { seccomp_release(ctx); }
  } release{ctx};
  seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  for (const Rule& r : rules) {
    int nr = seccomp_syscall_resolve_name(r.syscall.c_str());
    int rc = 0;
    switch (r.kind) {
      case Rule::Kind::kAllow:
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        break;
      case Rule::Kind::kErrno:
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(static_cast<uint32_t>(r.error)), nr, 0);
        break;
      case Rule::Kind::kAllowIfIn:
        for (uint64_t v : r.values) {
          rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_CMP(r.arg, SCMP_CMP_EQ, v, 0));
          if (rc) break;
        }
        break;
      case Rule::Kind::kAllowIfNone:
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_CMP(r.arg, SCMP_CMP_MASKED_EQ, r.values[0], 0));
        break;
    }
    // EEXIST: an equivalent rule is already there (e.g. common and role both allow it).
    if (rc && rc != -EEXIST) throw SystemError(-rc, "seccomp rule " + r.where);
  }
  int rc = seccomp_load(ctx);
  if (rc) throw SystemError(-rc, "loading the seccomp filter");
}

}  // namespace bulkhead::policy
