// Interop with a real front-end and real guest drivers: QEMU 7.2 (TCG) drives our
// virtio-scsi device process through -device vhost-user-scsi-pci, and Debian's kernel uses it
// with its virtio_scsi and sd drivers. The host then checks the disk images.
#include <fstream>
#include <random>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

constexpr const char* kScenario = R"SH(
echo "LAB: partitions"; cat /proc/partitions
[ -b /dev/sda ] && [ -b /dev/sdb ] || { echo "LAB: disks missing"; exit 1; }
[ "$(cat /sys/block/sdb/ro)" = 1 ] || { echo "LAB: sdb should be read-only"; exit 2; }
[ "$(cat /sys/block/sda/ro)" = 0 ] || { echo "LAB: sda should be writable"; exit 3; }
echo "LAB: discard_max_bytes=$(cat /sys/block/sda/queue/discard_max_bytes)"
dd if=/pattern of=/dev/sda bs=4096 seek=10 conv=fsync 2>/dev/null || exit 4
echo 3 > /proc/sys/vm/drop_caches
a=$(md5sum < /pattern); b=$(dd if=/dev/sda bs=4096 skip=10 count=256 2>/dev/null | md5sum)
echo "LAB: pattern=$a disk=$b"
[ "$a" = "$b" ] || exit 5
blkdiscard -o 40960 -l 4096 /dev/sda || exit 6
sync
[ "$(head -c 7 /dev/sdb)" = "RO-DISK" ] || { echo "LAB: sdb content"; exit 7; }
if dd if=/pattern of=/dev/sdb bs=4096 count=1 conv=fsync 2>/dev/null; then echo "LAB: wrote to a read-only disk"; exit 8; fi
echo "LAB: all checks passed"
)SH";

class VhostUserScsiInteropTest : public VmTest {
 protected:
  void SetUp() override {
    if (!have_program("qemu-system-x86_64")) GTEST_SKIP() << "needs qemu-system-x86_64 (scripts/setup.sh installs it)";
    VmTest::SetUp();
    if (IsSkipped()) return;
    std::string why;
    kernel_ = fetch_kernel(&why);
    if (kernel_.empty()) GTEST_SKIP() << "no Debian kernel: " << why;
  }
  std::string kernel_;
  TempDir dir_;
};

TEST_F(VhostUserScsiInteropTest, QemuAndLinuxWriteAndReadOurDisks) {
  std::string pattern(1 << 20, '\0');
  std::mt19937 random(42);
  for (char& c : pattern) c = static_cast<char>(random());
  std::ofstream(dir_.file("pattern"), std::ios::binary) << pattern;
  std::ofstream(dir_.file("disk.img"), std::ios::binary) << std::string(32 << 20, '\0');
  std::string ro_content = "RO-DISK" + std::string((1 << 20) - 7, 'r');
  std::ofstream(dir_.file("ro.img"), std::ios::binary) << ro_content;

  std::string why;
  std::string initrd = make_initramfs(kernel_, kScenario, {"virtio_pci", "virtio_scsi", "sd_mod"},
                                      {dir_.file("pattern") + ":/pattern"}, &why);
  ASSERT_FALSE(initrd.empty()) << why;

  std::string socket = dir_.file("scsi.sock");
  Subprocess device({bulkhead(), "device", "virtio-scsi", "--socket", socket, "--disk", dir_.file("disk.img"), "--disk",
                     dir_.file("ro.img") + ",ro"},
                    false);
  ASSERT_TRUE(device.wait_for("listening on", 10s, true)) << device.err();
  Subprocess qemu({"/usr/bin/qemu-system-x86_64", "-accel", "tcg", "-M", "pc", "-m", "512", "-object",
                   "memory-backend-memfd,id=mem,size=512M,share=on", "-numa", "node,memdev=mem", "-chardev",
                   "socket,id=c0,path=" + socket, "-device", "vhost-user-scsi-pci,chardev=c0", "-kernel",
                   kernel_ + "/vmlinuz", "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1", "-nographic",
                   "-no-reboot"},
                  false);
  bool finished = qemu.wait_for("LAB-EXIT", 240s);
  qemu.wait(60s);
  EXPECT_TRUE(finished) << qemu.out();
  EXPECT_NE(qemu.out().find("LAB-EXIT 0"), std::string::npos) << qemu.out();
  EXPECT_NE(qemu.out().find("discard_max_bytes=4294966784"), std::string::npos)
      << "Linux enables discard from our VPD pages" << qemu.out();

  std::ifstream image(dir_.file("disk.img"), std::ios::binary);
  std::string disk((std::istreambuf_iterator<char>(image)), std::istreambuf_iterator<char>());
  EXPECT_EQ(disk.substr(40960, 4096), std::string(4096, '\0')) << "the discarded block reads back as zeros";
  EXPECT_TRUE(disk.substr(45056, (1 << 20) - 4096) == pattern.substr(4096)) << "the written pattern is on the image";
  std::ifstream ro(dir_.file("ro.img"), std::ios::binary);
  std::string ro_after((std::istreambuf_iterator<char>(ro)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(ro_after == ro_content) << "the read-only image is untouched";

  device.signal(SIGTERM);
  EXPECT_EQ(device.wait(30s), 128 + SIGTERM);
}

}  // namespace
}  // namespace bulkhead::test
