#include "launcher/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <vector>

#include "common/error.h"

extern char** environ;

namespace bulkhead::launcher {

namespace {
// Sanitizer builds need their settings in the children too; nothing else passes through.
std::vector<std::string> scrubbed_environment() {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string var(*e);
    for (const char* prefix : {"ASAN_OPTIONS=", "UBSAN_OPTIONS=", "LSAN_OPTIONS="})
      if (var.rfind(prefix, 0) == 0) env.push_back(var);
  }
  return env;
}

// Our stderr for a role. A terminal is usually open read-write, and a role could read what
// the operator types through it: it gets the terminal reopened write-only instead.
UniqueFd write_only_stderr() {
  struct stat st;
  int flags = ::fcntl(STDERR_FILENO, F_GETFL);
  // fstat/fcntl on our own stderr.
  if (::fstat(STDERR_FILENO, &st) == 0 && S_ISCHR(st.st_mode) && flags >= 0 && (flags & O_ACCMODE) != O_WRONLY) {
    UniqueFd reopened(::open("/proc/self/fd/2", O_WRONLY | O_NOCTTY | O_CLOEXEC));
    if (reopened) return reopened;
  }
  UniqueFd same(::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0));
  if (!same) return UniqueFd(::open("/dev/null", O_WRONLY | O_CLOEXEC));  // no stderr at all
  return same;
}

}  // namespace

std::string executable_dir() {
  char path[PATH_MAX];
  // readlink of our own executable into a local buffer; the result is not NUL-terminated.
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw_errno("readlink /proc/self/exe");
  path[n] = 0;
  std::string dir(path);
  return dir.substr(0, dir.rfind('/'));
}

RoleProcess spawn_role(const std::string& executable, const std::string& role, const SpawnOptions& options) {
  int pair[2];
  // A connected pair of SEQPACKET sockets: ours and the child's control socket.
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  UniqueFd ours(pair[0]), theirs(pair[1]);
  // The role's stdin and stdout: /dev/null; its stderr (its log): ours, write-only.
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw_errno("opening /dev/null");
  UniqueFd log = write_only_stderr();
  // All above every descriptor the child sets up (0-3), so no dup2 below overwrites another.
  UniqueFd control_high(::fcntl(theirs.get(), F_DUPFD_CLOEXEC, 10)), null_high(::fcntl(null.get(), F_DUPFD_CLOEXEC, 10)),
      log_high(::fcntl(log.get(), F_DUPFD_CLOEXEC, 10));
  if (!control_high || !null_high || !log_high) throw_errno("fcntl(F_DUPFD_CLOEXEC)");

  // Everything the child needs is prepared before clone3(): after it, only system calls.
  std::vector<std::string> env_strings = scrubbed_environment();
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string argv0 = role;
  char* argv[] = {argv0.data(), nullptr};
  pid_t parent = options.as_sibling ? ::getppid() : ::getpid();
  const std::string& context = options.selinux_context;

  int pidfd = -1;
  clone_args args{};
  args.flags = CLONE_PIDFD;
  if (options.namespaces) {
    args.flags |= CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
    if (!options.host_network) args.flags |= CLONE_NEWNET;
  }
  if (options.cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(options.cgroup_fd);
  }
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  // A sibling's parent is told by the signal it chose for us (SIGCHLD); clone3 wants 0 here.
  if (options.as_sibling) args.flags |= CLONE_PARENT;
  else args.exit_signal = SIGCHLD;
  // clone3 with the args above; the child continues below with a copy of our memory.
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof args));
  if (pid < 0) throw_errno("starting " + role + " (clone3)");
  if (pid == 0) {
    // Child: async-signal-safe system calls only.
    ::setsid();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Outside a new pid namespace, check the launcher did not die before the line above; in
    // one, getppid() is 0 and a dead launcher shows as a hung-up control socket instead.
    if (!options.namespaces && ::getppid() != parent) ::_exit(127);
    if (::dup2(null_high.get(), STDIN_FILENO) < 0 || ::dup2(null_high.get(), STDOUT_FILENO) < 0 ||
        ::dup2(log_high.get(), STDERR_FILENO) < 0 || ::dup2(control_high.get(), ipc::kControlFd) < 0)
      ::_exit(127);
    ::syscall(SYS_close_range, ipc::kControlFd + 1, ~0u, 0);
    if (!context.empty()) {
      // The SELinux domain the next execve enters (what setexeccon does, without libselinux).
      int attr = ::open("/proc/thread-self/attr/exec", O_WRONLY | O_CLOEXEC);
      if (attr < 0 || ::write(attr, context.c_str(), context.size()) != static_cast<ssize_t>(context.size())) ::_exit(126);
      ::close(attr);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(executable.c_str(), argv, envp.data());
    ::_exit(127);
  }
  RoleProcess process;
  process.role = role;
  process.pid = pid;
  process.pidfd.reset(pidfd);
  process.control.emplace(std::move(ours));
  return process;
}

bool try_reap(RoleProcess& process) {
  if (process.reaped) return true;
  // Non-blocking wait for our own child.
  pid_t r = ::waitpid(process.pid, &process.wait_status, WNOHANG);
  if (r == process.pid) process.reaped = true;
  return process.reaped;
}

void stop_role(RoleProcess& process) {
  if (process.reaped) return;
  // Our own child, pid 1 of its namespace: SIGTERM would be ignored, SIGKILL always ends it.
  ::kill(process.pid, SIGKILL);
  while (!try_reap(process)) {
    pollfd p{process.pidfd.get(), POLLIN, 0};
    ::poll(&p, 1, 1000);
  }
}

std::string describe_exit(const RoleProcess& process) {
  int s = process.wait_status;
  if (WIFEXITED(s)) {
    if (WEXITSTATUS(s) == 127) return "could not be started";
    if (WEXITSTATUS(s) == 126) return "could not enter its SELinux domain";
    return "exited with status " + std::to_string(WEXITSTATUS(s));
  }
  if (WIFSIGNALED(s))
    return "was killed by signal " + std::to_string(WTERMSIG(s)) + " (" + ::strsignal(WTERMSIG(s)) + ")";
  return "ended";
}

}  // namespace bulkhead::launcher
