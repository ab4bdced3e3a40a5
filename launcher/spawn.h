// Starting a role process (bh-core, bh-serial, ...) from its own executable, with nothing
// inherited but its control socket on fd 3.
#pragma once

#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "ipc/control_channel.h"

namespace bulkhead::launcher {

struct RoleProcess {
  std::string role;  // e.g. "bh-serial"
  pid_t pid = -1;
  UniqueFd pidfd;    // readable once the process has exited
  std::optional<ipc::ControlChannel> control;
  bool reaped = false;
  int wait_status = 0;
};

// Descriptors that travel with one StartRole message; its fd fields hold their index.
class FdList {
 public:
  int add(int fd) {
    if (fd < 0) return -1;
    fds_.push_back(fd);
    return static_cast<int>(fds_.size() - 1);
  }
  std::span<const int> all() const { return fds_; }

 private:
  std::vector<int> fds_;
};

struct SpawnOptions {
  // New mount, pid, ipc, uts, net and cgroup namespaces (the role is pid 1 of its own).
  bool namespaces = false;
  // ... but the host's network namespace (user-mode networking reaches the host's network).
  bool host_network = false;
  // Start inside this cgroup (a directory descriptor), or -1.
  int cgroup_fd = -1;
  // SELinux context to exec into (the role's domain at the VM's categories), or "".
  std::string selinux_context;
  // The new process is our parent's child, not ours (CLONE_PARENT): how bh-respawn starts a
  // device again for the supervisor, which then reaps it like the ones it started itself.
  bool as_sibling = false;
};

// Starts `executable` (clone3) in a new session, with PR_SET_PDEATHSIG so it dies with us, an
// empty environment (but for sanitizer settings), /dev/null as stdin and stdout, our stderr
// (a terminal reopened write-only) and its control socket on fd 3; nothing else.
RoleProcess spawn_role(const std::string& executable, const std::string& role, const SpawnOptions& options = {});

// Reaps `process` if it has exited (non-blocking); returns true once reaped.
bool try_reap(RoleProcess& process);
// Kills `process` and reaps it.
void stop_role(RoleProcess& process);
// Describes how a reaped process ended: "exited with status 1", "was killed by signal 9 (Killed)".
std::string describe_exit(const RoleProcess& process);

// Directory of the running launcher executable, where role executables live.
std::string executable_dir();

}  // namespace bulkhead::launcher
