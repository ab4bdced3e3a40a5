// The sVirt policy module, checked offline against Debian's real policy: bulkhead.pp is
// linked into a copy of the installed policy store (semodule -p COPY -n -i), and the
// resulting kernel policy answers a table of access decisions through libsepol, exactly as
// the kernel would compute them (type enforcement, then the MCS constraints).
#include <gtest/gtest.h>
#include <sepol/policydb/services.h>
#include <sepol/sepol.h>
#include <unistd.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "device-procs/device_kind.h"
#include "tests/support/lab.h"
#include "tests/support/subprocess.h"

namespace bulkhead::test {
namespace {

constexpr const char* kVm1 = "s0:c1,c2";
constexpr const char* kVm2 = "s0:c3,c4";
constexpr const char* kLauncher = "system_u:system_r:bulkhead_launcher_t:s0-s0:c0.c1023";

std::string domain(const std::string& role, const std::string& mcs) { return "system_u:system_r:bulkhead_" + role + "_t:" + mcs; }
std::string object(const std::string& type, const std::string& mcs) { return "system_u:object_r:" + type + ":" + mcs; }

// Why the policy module cannot be checked here, or "".
std::string policy_tools_missing() {
  if (::access(BULKHEAD_SELINUX_MODULE, R_OK) != 0)
    return std::string("the policy module was not built (") + BULKHEAD_SELINUX_MODULE + "); install selinux-policy-dev";
  if (::access("/etc/selinux/default", F_OK) != 0 || ::access("/var/lib/selinux/default", F_OK) != 0 ||
      !have_program("semodule"))
    return "Debian's policy store (selinux-policy-default) or semodule is missing";
  return "";
}

// Links `modules` (.pp files) into a copy of Debian's policy store under `root`; returns the
// kernel policy it produced, or "" with the reason in *why.
std::string link_policy(const std::string& root, const std::vector<std::string>& modules, std::string* why) {
  std::string command = "mkdir -p " + root + "/etc " + root + "/var/lib && cp -a /etc/selinux " + root +
                        "/etc/ && cp -a /var/lib/selinux " + root + "/var/lib/ && semodule -p " + root + " -s default -n";
  for (const std::string& m : modules) command += " -i " + m;
  std::string output;
  if (run_command(command + " 2>&1", &output) != 0) {
    *why = "semodule could not link the modules into the policy: " + output;
    return "";
  }
  return root + "/etc/selinux/default/policy/policy.33";
}

class SelinuxPolicyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = policy_tools_missing();
    if (!skip_reason_.empty()) return;
    store_ = new TempDir();
    std::string policy = link_policy(store_->path(), {BULKHEAD_SELINUX_MODULE}, &failure_);
    if (policy.empty()) return;
    FILE* file = std::fopen(policy.c_str(), "r");
    if (!file) {
      failure_ = "no kernel policy at " + policy;
      return;
    }
    sepol_debug(0);
    int rc = sepol_set_policydb_from_file(file);
    std::fclose(file);
    if (rc != 0) failure_ = "libsepol could not load " + policy;
  }
  static void TearDownTestSuite() {
    delete store_;
    store_ = nullptr;
  }
  void SetUp() override {
    if (!skip_reason_.empty()) GTEST_SKIP() << skip_reason_;
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  // Whether `source` may do all of `perms` (space-separated) to `target` of class `cls`;
  // *why gets the reason libsepol gives for a denial.
  static bool allowed(const std::string& source, const std::string& target, const std::string& cls,
                      const std::string& perms, std::string* why) {
    sepol_security_id_t ssid, tsid;
    EXPECT_EQ(sepol_context_to_sid(source.c_str(), source.size() + 1, &ssid), 0) << "invalid context " << source;
    EXPECT_EQ(sepol_context_to_sid(target.c_str(), target.size() + 1, &tsid), 0) << "invalid context " << target;
    sepol_security_class_t tclass;
    EXPECT_EQ(sepol_string_to_security_class(cls.c_str(), &tclass), 0) << "unknown class " << cls;
    sepol_access_vector_t requested = 0;
    size_t start = 0;
    while (start < perms.size()) {
      size_t end = perms.find(' ', start);
      std::string perm = perms.substr(start, end == std::string::npos ? std::string::npos : end - start);
      sepol_access_vector_t bit = 0;
      EXPECT_EQ(sepol_string_to_av_perm(tclass, perm.c_str(), &bit), 0) << "unknown permission " << cls << ":" << perm;
      requested |= bit;
      if (end == std::string::npos) break;
      start = end + 1;
    }
    sepol_av_decision decision{};
    unsigned int reason = 0;
    char* text = nullptr;
    EXPECT_EQ(sepol_compute_av_reason_buffer(ssid, tsid, tclass, requested, &decision, &reason, &text, 0), 0);
    bool ok = (decision.allowed & requested) == requested;
    *why = reason & SEPOL_COMPUTEAV_CONS ? "MCS/constraint" : reason & SEPOL_COMPUTEAV_TE ? "no allow rule" : "";
    if (text) {
      *why += std::string(": ") + text;
      std::free(text);
    }
    return ok;
  }

  static inline TempDir* store_ = nullptr;
  static inline std::string skip_reason_, failure_;
};

struct Decision {
  std::string source, target, cls, perms;
  bool allow;
  const char* what;
};

// One test: linking the module into a copy of the store takes a few seconds.
TEST_F(SelinuxPolicyTest, AccessDecisions) {
  const std::string core1 = domain("core", kVm1), serial1 = domain("serial", kVm1), scsi1 = domain("virtio_scsi", kVm1),
                    ide1 = domain("ide", kVm1), net1 = domain("virtio_net", kVm1), e1000_1 = domain("e1000", kVm1),
                    balloon1 = domain("virtio_balloon", kVm1), scsi2 = domain("virtio_scsi", kVm2),
                    core2 = domain("core", kVm2), slirp1 = domain("slirp", kVm1);
  const std::string image1 = object("bulkhead_image_t", kVm1), image2 = object("bulkhead_image_t", kVm2),
                    shared = object("bulkhead_image_ro_t", "s0"), socket1 = object("bulkhead_socket_t", kVm1),
                    socket2 = object("bulkhead_socket_t", kVm2), ram1 = object("bulkhead_tmpfs_t", kVm1),
                    ram2 = object("bulkhead_tmpfs_t", kVm2), log1 = object("bulkhead_log_t", kVm1),
                    log2 = object("bulkhead_log_t", kVm2), kvm = object("kvm_device_t", "s0"),
                    tap = object("tun_tap_device_t", "s0"), state1 = object("bulkhead_state_t", kVm1),
                    huge1 = object("hugetlbfs_t", kVm1), huge2 = object("hugetlbfs_t", kVm2),
                    control1 = object("bulkhead_control_t", kVm1);
  const std::string operator_domain = "unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023";
  const Decision table[] = {
      // Inside one VM: each role gets what it needs.
      {core1, kvm, "chr_file", "read write ioctl", true, "the core drives /dev/kvm"},
      {core1, ram1, "file", "read write map", true, "the core maps guest RAM"},
      {scsi1, ram1, "file", "read write map", true, "a device maps its VM's guest RAM"},
      {core1, huge1, "file", "read write map", true, "the core maps guest RAM in huge pages"},
      {balloon1, huge1, "file", "read write map", true, "the balloon maps (and punches) guest RAM in huge pages"},
      {serial1, ram1, "file", "read write map", true, "the serial device maps its access ring"},
      {scsi1, image1, "file", "read write getattr", true, "virtio-scsi reads and writes its VM's image"},
      {ide1, image1, "file", "read write", true, "IDE reads and writes its VM's image"},
      {scsi1, image1, "blk_file", "read write", true, "images may be block devices"},
      {scsi1, shared, "file", "read", true, "a shared read-only image is readable"},
      {core1, shared, "file", "read", true, "the core reads its kernel and initrd"},
      {net1, tap, "chr_file", "read write", true, "virtio-net uses the tap"},
      {e1000_1, tap, "chr_file", "read write", true, "e1000 uses the tap"},
      {scsi1, socket1, "unix_stream_socket", "read write", true, "a device talks to its own core"},
      {core1, socket1, "unix_stream_socket", "read write", true, "the core talks to its devices"},
      {serial1, socket1, "unix_stream_socket", "accept", true, "the console socket accepts clients"},
      {serial1, log1, "file", "append", true, "the serial device appends to its console log"},
      {scsi1, core1, "fd", "use", true, "descriptors the core passes (memory files, eventfds)"},
      {kLauncher, core1, "process", "transition", true, "the launcher starts the core at the VM's categories"},
      {kLauncher, scsi1, "process2", "nnp_transition", true, "... also under no_new_privs"},
      {kLauncher, scsi2, "process", "sigkill", true, "the launcher stops any VM's processes"},
      {core1, object("bulkhead_core_exec_t", "s0"), "file", "entrypoint", true, "the core's executable enters bulkhead_core_t"},
      // Across VMs: categories keep them apart.
      {scsi1, image2, "file", "read", false, "another VM's image"},
      {ide1, image2, "file", "write", false, "another VM's image, written"},
      {scsi1, ram2, "file", "read", false, "another VM's guest RAM"},
      {balloon1, huge2, "file", "read write map", false, "another VM's guest RAM in huge pages"},
      {core1, ram2, "file", "read write map", false, "another VM's guest RAM, mapped by a core (mmap checks read and write too)"},
      {scsi1, socket2, "unix_stream_socket", "read write", false, "another VM's sockets"},
      {scsi1, core2, "unix_stream_socket", "connectto", false, "connecting to another VM's core"},
      {serial1, log2, "file", "append", false, "another VM's console log"},
      {core1, scsi2, "process", "signal", false, "signalling another VM's device"},
      {scsi1, scsi2, "process", "ptrace", false, "tracing another VM's device"},
      // Across roles inside one VM: only the roles that need a resource get it.
      {net1, image1, "file", "read", false, "virtio-net never touches images"},
      {e1000_1, image1, "file", "read", false, "e1000 never touches images"},
      {serial1, image1, "file", "read", false, "the serial device never touches images"},
      {balloon1, image1, "file", "read", false, "the balloon never touches images"},
      {core1, image1, "file", "read", false, "the core never touches images"},
      {scsi1, shared, "file", "write", false, "read-only images stay read-only"},
      {scsi1, tap, "chr_file", "read", false, "virtio-scsi cannot use the tap"},
      {serial1, tap, "chr_file", "write", false, "the serial device cannot use the tap"},
      {core1, tap, "chr_file", "read", false, "the core cannot use the tap"},
      {scsi1, kvm, "chr_file", "read ioctl", false, "only the core has /dev/kvm"},
      {serial1, kvm, "chr_file", "ioctl", false, "only the core has /dev/kvm"},
      {scsi1, log1, "file", "write", false, "only the serial device writes the console log"},
      {scsi1, core1, "process", "signal", false, "devices do not signal the core"},
      {scsi1, core1, "process", "ptrace", false, "devices do not trace the core"},
      {scsi1, state1, "dir", "search", false, "roles have no business in the state directory"},
      {scsi1, scsi1, "tcp_socket", "create", false, "no network sockets"},
      {net1, net1, "tcp_socket", "create", false, "virtio-net opens no network socket (bh-slirp does)"},
      {net1, net1, "udp_socket", "create", false, "... nor a UDP one"},
      {slirp1, slirp1, "tcp_socket", "create connect", true, "user-mode networking makes the guest's connections"},
      {slirp1, slirp1, "udp_socket", "create write", true, "... and its UDP flows"},
      {slirp1, object("http_port_t", "s0"), "tcp_socket", "name_connect", true, "... to any port"},
      {slirp1, object("unreserved_port_t", "s0"), "tcp_socket", "name_bind", true, "forwarded host ports"},
      {slirp1, ram1, "file", "create write", true, "its root's /etc/resolv.conf, written before the root turns read-only"},
      {slirp1, image1, "file", "read", false, "bh-slirp never touches images"},
      {slirp1, tap, "chr_file", "read", false, "bh-slirp has no tap"},
      {slirp1, kvm, "chr_file", "ioctl", false, "only the core has /dev/kvm"},
      {slirp1, object("shadow_t", "s0"), "file", "read", false, "host files"},
      {scsi1, object("bulkhead_core_exec_t", "s0"), "file", "entrypoint", false, "a device cannot become the core"},
      // The control socket: the supervisor serves it, an operator's `bulkhead ctl` connects, no role of any VM can.
      {kLauncher, control1, "unix_stream_socket", "create bind listen accept read write", true, "the supervisor serves bulkhead ctl"},
      {kLauncher, control1, "unix_stream_socket", "connectto", true, "bulkhead ctl, in the launcher's domain, connects"},
      {operator_domain, control1, "unix_stream_socket", "connectto", true, "an operator's own client connects"},
      {operator_domain, socket1, "unix_stream_socket", "connectto", true, "an operator connects to a unix console"},
      {scsi1, control1, "unix_stream_socket", "connectto", false, "a device cannot reach its VM's control socket"},
      {core1, control1, "unix_stream_socket", "connectto", false, "nor can the core"},
      {slirp1, control1, "unix_stream_socket", "connectto", false, "nor bh-slirp"},
      {scsi1, control1, "unix_stream_socket", "read write", false, "nor use a control connection that reached it"},
      {scsi2, control1, "unix_stream_socket", "connectto", false, "nor another VM's device"},
      {scsi1, object("shadow_t", "s0"), "file", "read", false, "host files"},
  };
  ASSERT_GE(std::size(table), 30u);
  for (const Decision& d : table) {
    std::string why;
    bool ok = allowed(d.source, d.target, d.cls, d.perms, &why);
    EXPECT_EQ(ok, d.allow) << d.what << "\n  " << d.source << " -> " << d.target << " " << d.cls << " { " << d.perms
                           << " }" << (ok ? "" : "\n  denied: " + why);
  }

  // Every process role of the device table (devices and helpers): a domain the launcher enters from its
  // executable, that reaches its own VM's sockets and guest RAM and nothing of another VM.
  for (const devices::ProcessRole& role : devices::process_roles()) {
    SCOPED_TRACE(role.process_name);
    std::string self = "system_u:system_r:" + role.selinux_type + ":" + kVm1;
    std::string exec_type = role.selinux_type.substr(0, role.selinux_type.size() - 2) + "_exec_t";
    std::string why;
    EXPECT_TRUE(allowed(kLauncher, self, "process", "transition", &why)) << why;
    EXPECT_TRUE(allowed(self, object(exec_type, "s0"), "file", "entrypoint", &why)) << why;
    EXPECT_TRUE(allowed(self, socket1, "unix_stream_socket", "read write", &why)) << why;
    EXPECT_TRUE(allowed(self, ram1, "file", "read write map", &why)) << why;
    EXPECT_FALSE(allowed(self, socket2, "unix_stream_socket", "read write", &why));
    EXPECT_FALSE(allowed(self, ram2, "file", "read", &why));
    EXPECT_FALSE(allowed(self, image2, "file", "read", &why));
    EXPECT_FALSE(allowed(self, kvm, "chr_file", "ioctl", &why));
    EXPECT_FALSE(allowed(self, object("shadow_t", "s0"), "file", "read", &why));
  }

  // Cross-VM denials come from the MCS constraint alone: type enforcement allows the access.
  std::string why;
  EXPECT_TRUE(allowed(domain("virtio_scsi", kVm1), object("bulkhead_image_t", kVm1), "file", "read", &why));
  EXPECT_FALSE(allowed(domain("virtio_scsi", kVm1), object("bulkhead_image_t", kVm2), "file", "read", &why));
  EXPECT_NE(why.find("MCS/constraint"), std::string::npos) << why;
  // A single category would be a subset of every pair containing it: such an object is
  // readable by VM 1, which is why the launcher never hands out one category alone.
  EXPECT_TRUE(allowed(domain("virtio_scsi", kVm1), object("bulkhead_image_t", "s0:c1"), "file", "read", &why));
}

// Live, in the nested lab: Debian's kernel under QEMU (TCG, emulated SVM, so /dev/kvm works
// inside) boots with SELinux, loads Debian's policy with this module (and a lab module that
// lets its init shell start things with runcon), labels the binaries, and enforces. VM B
// runs; VM A runs to completion next to it; then a probe in VM A-like context (the
// virtio-scsi domain at other categories) reads B's image through a descriptor it inherits,
// which the kernel must refuse, with an AVC denial in the audit log, while the same probe at
// B's categories reads it.
constexpr const char* kLabScenario = R"SH(
mount -t tmpfs tmp /tmp
mkdir -p /sys/fs/selinux /run && mount -t tmpfs run /run
mount -t selinuxfs selinuxfs /sys/fs/selinux || { echo "LAB: no selinuxfs"; exit 10; }
dd if=/policy.33 of=/sys/fs/selinux/load bs=16M 2>/dev/null || { echo "LAB: policy load failed"; exit 11; }
chcon -R system_u:object_r:lib_t:s0 /lib /lib64 /usr/lib 2>/dev/null
chcon system_u:object_r:ld_so_t:s0 /lib64/ld-linux-x86-64.so.2 /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 2>/dev/null
chcon system_u:object_r:kvm_device_t:s0 /dev/kvm || exit 12
chcon system_u:object_r:null_device_t:s0 /dev/null || exit 12
B=/opt/bulkhead
chcon system_u:object_r:bulkhead_exec_t:s0 $B/bulkhead || exit 13
chcon system_u:object_r:bulkhead_core_exec_t:s0 $B/bulkhead-core || exit 13
chcon system_u:object_r:bulkhead_serial_exec_t:s0 $B/bulkhead-serial || exit 13
chcon system_u:object_r:bulkhead_virtio_scsi_exec_t:s0 $B/bulkhead-virtio-scsi || exit 13
mkdir /opt/probe && cp /bin/busybox /opt/probe/busybox
chcon system_u:object_r:bulkhead_virtio_scsi_exec_t:s0 /opt/probe/busybox || exit 13
echo 1 > /sys/fs/selinux/enforce
echo "LAB: enforcing $(cat /sys/fs/selinux/enforce)"
truncate -s 1M /tmp/a.img /tmp/b.img
echo data-of-vm-b | dd of=/tmp/b.img conv=notrunc 2>/dev/null
L=system_u:system_r:bulkhead_launcher_t:s0-s0:c0.c1023
runcon $L $B/bulkhead run --name vm-b --disk /tmp/b.img --cmdline echo --serial file=/tmp/b.log &
for i in $(seq 60); do grep -q READY /tmp/b.log 2>/dev/null && break; sleep 1; done
echo "LAB: vm-b $(grep READY /tmp/b.log)"
MCS=$(cat /run/bulkhead/vm-b/mcs)
echo "LAB: vm-b categories $MCS"
for p in $(pidof bh-core bh-serial bh-virtio-scsi); do echo "LAB: role $(cat /proc/$p/comm) $(cat /proc/$p/attr/current)"; done
echo "LAB: ctl $(runcon $L $B/bulkhead ctl --vm vm-b status 2>&1 | head -1)"
runcon $L $B/bulkhead run --name vm-a --disk /tmp/a.img --cmdline "hello scsi-disk" --serial file=/tmp/a.log
echo "LAB: vm-a exit $? $(grep -o 'scsi-disk .* ok' /tmp/a.log)"
OTHER=s0:c1,c2; [ "$MCS" = "$OTHER" ] && OTHER=s0:c3,c4
echo "LAB: probe at B [$(runcon system_u:system_r:bulkhead_virtio_scsi_t:$MCS /opt/probe/busybox head -c 12 < /tmp/b.img)]"
echo "LAB: probe at $OTHER [$(runcon system_u:system_r:bulkhead_virtio_scsi_t:$OTHER /opt/probe/busybox head -c 12 < /tmp/b.img)]"
dmesg | grep -o 'avc: *denied.*' | sed 's/^/LAB: /'
)SH";

TEST(SelinuxLabTest, TwoVmsUnderEnforcingSelinuxAndACrossVmDenial) {
  std::string missing = policy_tools_missing();
  if (!missing.empty()) GTEST_SKIP() << missing;
  if (!have_program("qemu-system-x86_64")) GTEST_SKIP() << "needs qemu-system-x86_64 (scripts/setup.sh installs it)";
  std::string why;
  std::string kernel = fetch_kernel(&why);
  if (kernel.empty()) GTEST_SKIP() << "no Debian kernel: " << why;

  TempDir dir;
  std::string output;
  std::string lab_module = dir.file("bulkhead_lab.pp");
  ASSERT_EQ(run_command("cp " + std::string(BULKHEAD_SOURCE_DIR) + "/tests/lab/selinux/bulkhead_lab.te " + dir.path() +
                            " && make -s -C " + dir.path() +
                            " -f /usr/share/selinux/devel/Makefile NAME=default bulkhead_lab.pp 2>&1",
                        &output),
            0)
      << output;
  std::string policy = link_policy(dir.file("store"), {BULKHEAD_SELINUX_MODULE, lab_module}, &why);
  ASSERT_FALSE(policy.empty()) << why;

  std::vector<std::string> files = bulkhead_payload();
  files.insert(files.end(), {policy + ":/policy.33", "/etc/selinux/config:/etc/selinux/config",
                             "/usr/bin/chcon:/usr/bin/chcon", "/usr/bin/runcon:/usr/bin/runcon"});
  std::string initrd = make_initramfs(kernel, kLabScenario, {"kvm-amd"}, files, &why);
  ASSERT_FALSE(initrd.empty()) << why;

  bool finished = false;
  const std::string out = run_nested_lab(kernel, initrd, "security=selinux selinux=1 enforcing=0", &finished);
  ASSERT_TRUE(finished) << out;
  EXPECT_NE(out.find("LAB-EXIT 0"), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: enforcing 1"), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: vm-b BH-READY echo"), std::string::npos) << "VM B runs under enforcing SELinux:\n" << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("LAB: vm-b categories (s0:c[0-9]+,c[0-9]+)"))) << out;
  std::string mcs = m[1];
  for (const char* role : {"core", "serial", "virtio_scsi"})
    EXPECT_NE(out.find(std::string("_t:") + mcs), std::string::npos) << role;
  for (const char* role : {"bh-core system_u:system_r:bulkhead_core_t:", "bh-serial system_u:system_r:bulkhead_serial_t:",
                           "bh-virtio-scsi system_u:system_r:bulkhead_virtio_scsi_t:"})
    EXPECT_NE(out.find(std::string("LAB: role ") + role + mcs), std::string::npos) << role << " at VM B's categories\n" << out;
  EXPECT_NE(out.find("LAB: ctl VM vm-b (supervisor pid "), std::string::npos)
      << "bulkhead ctl reaches the control socket (bulkhead_control_t) under enforcing SELinux:\n" << out;
  EXPECT_NE(out.find("LAB: vm-a exit 0 scsi-disk"), std::string::npos) << "VM A runs next to B:\n" << out;
  EXPECT_NE(out.find("LAB: probe at B [data-of-vm-b]"), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: probe at s0:c"), std::string::npos) << out;
  EXPECT_EQ(out.find("data-of-vm-b]", out.find("LAB: probe at s0:c")), std::string::npos)
      << "another VM's categories read B's image:\n" << out;
  // Exactly one denial: the probe's. Anything else is a permission the policy lacks.
  std::regex denial("LAB: avc: *denied +\\{ read \\} .*comm=\"busybox\" path=\"/tmp/b.img\".*"
                    "scontext=system_u:system_r:bulkhead_virtio_scsi_t:s0:c[0-9]+,c[0-9]+ "
                    "tcontext=system_u:object_r:bulkhead_image_t:" + mcs + " tclass=file permissive=0");
  EXPECT_TRUE(std::regex_search(out, denial)) << "the cross-VM read is denied in the audit log:\n" << out;
  size_t denials = 0;
  for (size_t at = out.find("LAB: avc:"); at != std::string::npos; at = out.find("LAB: avc:", at + 1)) ++denials;
  EXPECT_EQ(denials, 1u) << out;
}

}  // namespace
}  // namespace bulkhead::test
