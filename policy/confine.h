// How a role process confines itself, once, before it reads anything a guest or a peer
// controls. The launcher already exec'd it into its SELinux domain (if SELinux is on) inside
// new mount, pid, ipc, uts and net namespaces; here, in order:
//   1. an empty, read-only root (tmpfs + pivot_root): the role can open nothing by path;
//   2. the VM's uid/gid, supplementary groups dropped, every capability and the bounding set
//      cleared (libcap-ng), no_new_privs;
//   3. rlimits: open files, file size, no core dumps;
//   4. Landlock: no filesystem access at all, no TCP, no signals or abstract sockets outside
//      the process (whatever the running kernel's Landlock ABI offers);
//   5. the role's seccomp allowlist.
#pragma once

#include <string>
#include <vector>

#include "ipc/control.pb.h"

namespace bulkhead::policy {

// Throws SystemError naming the step that failed. `policy` names policy/<policy>.policy.
void confine(const ipc::Confinement& confinement, const std::string& policy, const std::string& role);

// The supervisor (the launcher once the VM's processes run) confines itself: new ipc, uts,
// net and cgroup namespaces, a private mount namespace with an empty root; the VM's uid as its real uid, so it may signal the
// VM's processes without CAP_KILL, while the effective uid 0 keeps ownership of the state
// directory and cgroup it removes at the end; no capability left (but CAP_FOWNER when
// `keep_fowner`: restoring SELinux labels of images root does not own); no_new_privs;
// Landlock allowing nothing but removing entries beneath `removable_dirs` (held directory
// descriptors); and policy/supervisor.policy.
struct SupervisorConfinement {
  uint32_t vm_uid = 0;
  bool keep_fowner = false;
  std::vector<int> removable_dirs;
  ipc::Confinement::Violation violation = ipc::Confinement::KILL;
};
void confine_supervisor(const SupervisorConfinement& confinement);

// The Landlock ABI version of the running kernel (0: unavailable).
int landlock_abi();

}  // namespace bulkhead::policy
