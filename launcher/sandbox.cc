#include "launcher/sandbox.h"

#include <cap-ng.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <random>

#include "common/error.h"
#include "policy/confine.h"

namespace bulkhead::launcher {

namespace {

void check_privileges() {
  capng_get_caps_process();
  for (int cap : {CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID, CAP_SETPCAP})
    if (!capng_have_capability(CAPNG_EFFECTIVE, static_cast<unsigned>(cap)))
      throw InputError(
          "confining the VM's processes needs root (CAP_SYS_ADMIN, CAP_SETUID, CAP_SETGID and CAP_SETPCAP): run "
          "bulkhead as root, or pass --no-sandbox to debug without confinement");
}

}  // namespace

void check_selftest(const std::vector<std::string>& specs, const std::vector<std::string>& roles) {
#ifndef BULKHEAD_SELFTEST_HOOKS
  if (!specs.empty()) throw InputError("--selftest: this build has no self-test hooks (BULKHEAD_SELFTEST_HOOKS=OFF)");
#endif
  std::string known;
  for (const std::string& r : roles) known += (known.empty() ? "" : ", ") + r;
  for (const std::string& spec : specs) {
    size_t colon = spec.find(':');
    std::string role = spec.substr(0, colon), rest = colon == std::string::npos ? "" : spec.substr(colon + 1);
    if (std::find(roles.begin(), roles.end(), role) == roles.end() ||
        (rest.rfind("pre:", 0) != 0 && rest.rfind("post:", 0) != 0))
      throw InputError("--selftest '" + spec + "': expected ROLE:pre|post:CALL[=ARG] with ROLE one of " + known);
  }
}

void add_sandbox_options(CLI::App& command, SandboxRequest& r) {
  const char* group = "Confinement";
  command.add_flag("--no-sandbox", r.disabled,
                   "Debugging only: run every process unconfined, as the invoking user (prints a warning)")
      ->group(group);
  command.add_option("--seccomp", r.seccomp, "What a forbidden system call does: kill, or trap (log it, then die)")
      ->check(CLI::IsMember({"kill", "trap"}))
      ->capture_default_str()
      ->group(group);
  command.add_option("--name", r.name, "The VM's name, unique on this host (default: vm<pid>)")->group(group);
  command.add_option("--state-dir", r.state_dir, "The VM's state directory (default: /run/bulkhead/<name>)")
      ->group(group);
  command.add_option("--uid", r.uid, "Run the VM's processes as this uid (default: a free one from 1900000000 on)")
      ->group(group);
  command.add_option("--gid", r.gid, "... and this gid (default: the uid)")->group(group);
  command.add_option("--cgroup-parent", r.cgroup_parent,
                     "cgroup v2 group (relative to the hierarchy's root) to create the VM's group in (default: "
                     "bulkhead, skipped with a note when cgroup v2 controllers are not available)")
      ->group(group);
  command.add_option("--selinux", r.selinux, "sVirt labels: auto (when SELinux is enabled), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str()
      ->group(group);
  // For the confinement tests: ROLE:pre|post:CALL[=ARG], a forbidden call the role attempts.
  command.add_option("--selftest", r.selftest)->group("");
}

VmSandbox VmSandbox::prepare(const SandboxRequest& r, const CgroupLimits& limits) {
  VmSandbox s;
  SelinuxMode mode = parse_selinux_mode(r.selinux);
  if (r.disabled) {
    if (mode == SelinuxMode::kOn) throw InputError("--selinux=on cannot be combined with --no-sandbox");
    if (!r.selftest.empty()) throw InputError("--selftest needs the sandbox");
    std::fprintf(stderr,
                 "bulkhead: WARNING: --no-sandbox: the VM's processes run unconfined as uid %u, with no seccomp, "
                 "namespaces or labels; use this only for debugging\n",
                 ::geteuid());
    return s;
  }
  check_privileges();
  s.enabled_ = true;
  s.violation_ = r.seccomp == "trap" ? ipc::Confinement::TRAP : ipc::Confinement::KILL;
  s.selftest_ = r.selftest;
  std::string note;
  bool selinux = SvirtLabels::wanted(mode, &note);
  if (!note.empty()) s.notes_.push_back(note);
  IdentityRequest identity{r.name, r.state_dir, r.uid, r.gid, {}};
  if (selinux)
    identity.choose_mcs = [](const std::vector<std::string>& reserved) {
      std::random_device device;
      return allocate_mcs_pair(reserved, [&device] { return device(); });
    };
  s.identity_.emplace(VmIdentity::create(identity));
  if (selinux) {
    s.labels_.emplace(s.identity_->mcs());
    s.labels_->label_file(s.identity_->dir_fd(), "bulkhead_state_t", "the state directory");
  }
  std::string why;
  if (auto group = VmCgroup::create(r.cgroup_parent.value_or("bulkhead"), s.identity_->name(), limits, &why))
    s.cgroup_.emplace(std::move(*group));
  else {
    if (r.cgroup_parent) throw InputError("--cgroup-parent " + *r.cgroup_parent + ": " + why);
    s.notes_.push_back("no cgroup limits for this VM: " + why);
  }
  return s;
}

void VmSandbox::announce() const {
  for (const std::string& note : notes_) std::fprintf(stderr, "bulkhead: note: %s\n", note.c_str());
}

SpawnOptions VmSandbox::spawn_options(const std::string& selinux_type, bool host_network) const {
  SpawnOptions options;
  if (!enabled_) return options;
  options.namespaces = true;
  options.host_network = host_network;
  options.cgroup_fd = cgroup_ ? cgroup_->fd() : -1;
  if (labels_) options.selinux_context = labels_->process_context(selinux_type);
  return options;
}

ipc::Confinement VmSandbox::confinement(const std::string& role, const RoleLimits& limits) const {
  ipc::Confinement c;
  if (!enabled_) return c;
  c.set_enabled(true);
  c.set_uid(identity_->uid());
  c.set_gid(identity_->gid());
  c.set_violation(violation_);
  c.set_max_file_size(limits.max_file_size);
  c.set_max_open_files(limits.max_open_files);
  std::string tests;
  for (const std::string& spec : selftest_)
    if (spec.rfind(role + ":", 0) == 0) tests += (tests.empty() ? "" : ",") + spec.substr(role.size() + 1);
  c.set_selftest(tests);
  return c;
}

void VmSandbox::label_image(int fd, bool read_only, const std::string& path) {
  if (!labels_) return;
  if (read_only) labels_->label_file(fd, "bulkhead_image_ro_t", path, false);
  else labels_->label_file(fd, "bulkhead_image_t", path);
}

void VmSandbox::label_log(int fd, const std::string& path) {
  if (labels_) labels_->label_file(fd, "bulkhead_log_t", path, false);
}

void VmSandbox::confine_launcher(std::vector<int> removable_dirs) const {
  if (!enabled_) return;
  policy::SupervisorConfinement c;
  c.vm_uid = identity_->uid();
  c.keep_fowner = labels_.has_value();
  removable_dirs.push_back(identity_->root_fd());
  if (cgroup_) removable_dirs.push_back(cgroup_->parent_fd());
  c.removable_dirs = std::move(removable_dirs);
  c.violation = violation_;
  policy::confine_supervisor(c);
}

}  // namespace bulkhead::launcher
