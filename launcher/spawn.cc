#include "launcher/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

RoleProcess spawn_role(const std::string& executable, const std::string& role) {
  int pair[2];
  // A connected pair of SEQPACKET sockets: ours and the child's control socket.
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  UniqueFd ours(pair[0]), theirs(pair[1]);

  // Everything the child needs is prepared before fork(): after it, only syscalls.
  std::vector<std::string> env_strings = scrubbed_environment();
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string argv0 = role;
  char* argv[] = {argv0.data(), nullptr};
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::setsid();
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    if (::dup2(theirs.get(), ipc::kControlFd) < 0) ::_exit(127);
    ::syscall(SYS_close_range, ipc::kControlFd + 1, ~0u, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(executable.c_str(), argv, envp.data());
    ::_exit(127);
  }
  RoleProcess process;
  process.role = role;
  process.pid = pid;
  // pidfd_open on our own child: lets poll() tell us when it exits.
  process.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!process.pidfd) throw_errno("pidfd_open");
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

std::string describe_exit(const RoleProcess& process) {
  int s = process.wait_status;
  if (WIFEXITED(s)) {
    if (WEXITSTATUS(s) == 127) return "could not be started";
    return "exited with status " + std::to_string(WEXITSTATUS(s));
  }
  if (WIFSIGNALED(s))
    return "was killed by signal " + std::to_string(WTERMSIG(s)) + " (" + ::strsignal(WTERMSIG(s)) + ")";
  return "ended";
}

}  // namespace bulkhead::launcher
