// The VM's cgroup v2 group, live. These hosts bind the memory, cpu and pids controllers to
// cgroup v1, so the test runs in the nested lab: Debian's kernel under QEMU (TCG, emulated
// SVM, so /dev/kvm works inside) mounts cgroup2 with every controller, and a Bulkhead VM
// runs there with its default --cgroup-parent.
#include <gtest/gtest.h>

#include "tests/support/lab.h"
#include "tests/support/subprocess.h"

namespace bulkhead::test {
namespace {

constexpr const char* kScenario = R"SH(
mount -t tmpfs tmp /tmp
mkdir -p /run /sys/fs/cgroup && mount -t tmpfs run /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup || { echo "LAB: no cgroup2"; exit 10; }
truncate -s 1M /tmp/d.img
/opt/bulkhead/bulkhead run --name lab --memory 64M --cpus 2 --disk /tmp/d.img --cmdline echo --serial file=/tmp/c.log &
LAUNCHER=$!
for i in $(seq 60); do grep -q READY /tmp/c.log 2>/dev/null && break; sleep 1; done
echo "LAB: $(grep READY /tmp/c.log)"
G=/sys/fs/cgroup/bulkhead/bulkhead-lab
echo "LAB: memory.max $(cat $G/memory.max)"
echo "LAB: pids.max $(cat $G/pids.max)"
echo "LAB: cpu.max $(cat $G/cpu.max)"
for p in $(cat $G/cgroup.procs); do echo "LAB: member $(cat /proc/$p/comm)"; done
kill $LAUNCHER; wait $LAUNCHER
echo "LAB: launcher exit $?"
[ -d $G ] && echo "LAB: group left behind" || echo "LAB: group removed"
)SH";

TEST(CgroupLabTest, EveryProcessOfTheVmRunsInItsLimitedGroup) {
  if (!have_program("qemu-system-x86_64")) GTEST_SKIP() << "needs qemu-system-x86_64 (scripts/setup.sh installs it)";
  std::string why;
  std::string kernel = fetch_kernel(&why);
  if (kernel.empty()) GTEST_SKIP() << "no Debian kernel: " << why;
  std::string initrd = make_initramfs(kernel, kScenario, {"kvm-amd"}, bulkhead_payload(), &why);
  ASSERT_FALSE(initrd.empty()) << why;
  bool finished = false;
  const std::string out = run_nested_lab(kernel, initrd, "", &finished);
  ASSERT_TRUE(finished) << out;
  EXPECT_NE(out.find("LAB-EXIT 0"), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: BH-READY echo"), std::string::npos) << out;
  // 64 MiB of guest RAM + 256 MiB + 1/8; 256 + 4 per vCPU; one CPU per vCPU plus one.
  EXPECT_NE(out.find("LAB: memory.max " + std::to_string((64ull + 256 + 8) << 20)), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: pids.max 264"), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: cpu.max 300000 100000"), std::string::npos) << out;
  for (const char* role : {"bh-core", "bh-serial", "bh-virtio-scsi"})
    EXPECT_NE(out.find(std::string("LAB: member ") + role), std::string::npos) << role << " in the VM's group\n" << out;
  EXPECT_EQ(out.find("LAB: member bulkhead"), std::string::npos) << "the launcher stays outside\n" << out;
  EXPECT_NE(out.find("LAB: launcher exit 143"), std::string::npos) << out;
  EXPECT_NE(out.find("LAB: group removed"), std::string::npos) << "the confined launcher removes the group\n" << out;
}

}  // namespace
}  // namespace bulkhead::test
