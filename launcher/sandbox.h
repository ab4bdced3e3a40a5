// Everything `bulkhead run` (and `bulkhead device`) does to confine one VM: its identity
// (name, state directory, uid/gid), its cgroup, its SELinux labels, how each role process is
// started and confined, and finally the confinement of the launcher itself.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ipc/control.pb.h"
#include "launcher/cgroup.h"
#include "launcher/spawn.h"
#include "launcher/svirt.h"
#include "launcher/vm_identity.h"

namespace CLI {
class App;
}

namespace bulkhead::launcher {

struct SandboxRequest {
  bool disabled = false;               // --no-sandbox
  std::string seccomp = "kill";        // --seccomp kill|trap
  std::optional<uint32_t> uid, gid;    // --uid, --gid
  std::optional<std::string> name;     // --name
  std::optional<std::string> state_dir;      // --state-dir
  std::optional<std::string> cgroup_parent;  // --cgroup-parent
  std::string selinux = "auto";        // --selinux auto|on|off
  std::vector<std::string> selftest;   // --selftest ROLE:STAGE:CALL[=ARG] (test builds)
};

// Adds the options above to a subcommand.
void add_sandbox_options(CLI::App& command, SandboxRequest& request);

// Checks --selftest ROLE:pre|post:CALL[=ARG] specs against the roles (seccomp policy names)
// of this VM; throws InputError.
void check_selftest(const std::vector<std::string>& specs, const std::vector<std::string>& roles);

// What a role may grow and hold once confined.
struct RoleLimits {
  uint64_t max_file_size;   // RLIMIT_FSIZE: memfds it sizes, files it writes
  uint64_t max_open_files;  // RLIMIT_NOFILE
};

class VmSandbox {
 public:
  // Checks privileges, reserves the VM's identity (and SELinux categories) and creates its
  // cgroup with `limits`. Throws InputError naming the problem; nothing is left behind.
  static VmSandbox prepare(const SandboxRequest& request, const CgroupLimits& limits);
  VmSandbox(VmSandbox&&) noexcept = default;

  bool enabled() const { return enabled_; }
  const VmIdentity* identity() const { return identity_ ? &*identity_ : nullptr; }
  SvirtLabels* labels() { return labels_ ? &*labels_ : nullptr; }

  // Prints what the operator should know about this VM's confinement (missing cgroup v2,
  // no SELinux), once its input has been accepted and just before its processes start.
  void announce() const;
  // How to start a role whose SELinux domain is `selinux_type` ("bulkhead_core_t", ...);
  // `host_network`: in the host's network namespace (bh-slirp).
  SpawnOptions spawn_options(const std::string& selinux_type, bool host_network = false) const;
  // What role `policy` (its seccomp policy: "core", "serial", ...) confines itself to.
  ipc::Confinement confinement(const std::string& policy, const RoleLimits& limits) const;
  // Label files the VM's processes use (no-op without SELinux): a disk image (the VM's own,
  // or a shared read-only one), the kernel and initrd (read-only), the console log.
  void label_image(int fd, bool read_only, const std::string& path);
  void label_log(int fd, const std::string& path);

  // The launcher, once every process of the VM runs, confines itself too: it keeps only
  // what supervising needs. `removable_dirs`: directories (held open) where it must delete
  // something at the end, e.g. a unix socket's directory.
  void confine_launcher(std::vector<int> removable_dirs) const;

 private:
  VmSandbox() = default;
  bool enabled_ = false;
  ipc::Confinement::Violation violation_ = ipc::Confinement::KILL;
  std::vector<std::string> selftest_;
  std::vector<std::string> notes_;
  std::optional<VmIdentity> identity_;
  std::optional<VmCgroup> cgroup_;
  std::optional<SvirtLabels> labels_;
};

}  // namespace bulkhead::launcher
