// Bulkhead's virtio-pci transport and vhost-user front-end, end to end: the test guest's
// virtio-scsi driver against our virtio-scsi process (image on ext4 and on tmpfs), MSI-X
// interrupts, a third-party back-end (qemu-storage-daemon, virtio-blk), and the same guest
// scenario on QEMU's own virtio-scsi. The host re-reads every image afterwards.
#include <fstream>
#include <regex>
#include <thread>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

constexpr uint64_t kBlock = 512;
constexpr int kSites = 64;
constexpr uint64_t kSiteBlocks = 8;

// Same as the guest's pattern (guest/scenarios/disk.cc).
uint8_t pattern(uint64_t lba, uint32_t offset) { return static_cast<uint8_t>(lba * 131 + offset * 7 + 0x42); }

// Checks that every site the guest wrote holds its pattern on the host's copy of the image.
int verified_sites(const std::string& path, uint64_t blocks) {
  std::ifstream in(path, std::ios::binary);
  int good = 0;
  for (int site = 0; site < kSites; ++site) {
    uint64_t lba = site == kSites - 1 ? blocks - kSiteBlocks : static_cast<uint64_t>(site) * (blocks / kSites);
    std::string data(kSiteBlocks * kBlock, '\0');
    in.seekg(static_cast<std::streamoff>(lba * kBlock));
    in.read(data.data(), static_cast<std::streamsize>(data.size()));
    bool ok = true;
    for (uint64_t b = 0; b < kSiteBlocks && ok; ++b)
      for (uint32_t i = 0; i < kBlock && ok; ++i) ok = static_cast<uint8_t>(data[b * kBlock + i]) == pattern(lba + b, i);
    good += ok;
  }
  return good;
}

std::string make_image(const std::string& path, uint64_t bytes) {
  std::ofstream(path, std::ios::binary).seekp(static_cast<std::streamoff>(bytes - 1)).put('\0');
  return path;
}

class VirtioDiskTest : public VmTest {
 protected:
  TempDir dir_;
};

TEST_F(VirtioDiskTest, GuestDriverOnOurVirtioScsiProcessDiskBackedImage) {
  std::string image = make_image(dir_.file("disk.img"), 64 << 20);
  Subprocess vm(run_args({"--disk", image, "--cmdline", "scsi-disk"}), false);
  ASSERT_EQ(vm.wait(120s), 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("vendor=BULKHEAD blocks=131072 written=64 verified=64 oob=5/21/0 badop=5/20/0 luns=1"),
            std::string::npos)
      << vm.out();
  EXPECT_TRUE(std::regex_search(vm.out(), std::regex("failed_check=\"none\" ok\\s"))) << vm.out();
  EXPECT_EQ(verified_sites(image, 131072), kSites) << "the guest's writes are on the image";
}

TEST_F(VirtioDiskTest, GuestDriverOnAMemoryBackedImageWithSeveralLuns) {
  std::string image = make_image("/dev/shm/bulkhead-test-" + std::to_string(::getpid()) + ".img", 32 << 20);
  std::string second = make_image(dir_.file("lun1.img"), 1 << 20);
  Subprocess vm(run_args({"--disk", image, "--disk", second + ",ro", "--cmdline", "scsi-disk"}), false);
  int status = vm.wait(120s);
  int sites = verified_sites(image, 65536);
  ::unlink(image.c_str());
  ASSERT_EQ(status, 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("luns=2"), std::string::npos) << vm.out();
  EXPECT_EQ(sites, kSites);
}

TEST_F(VirtioDiskTest, CompletionsInterruptThroughMsix) {
  std::string image = make_image(dir_.file("disk.img"), 1 << 20);
  Subprocess vm(run_args({"--disk", image, "--cmdline", "scsi-irq"}), false);
  ASSERT_EQ(vm.wait(60s), 0) << vm.out() << vm.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("requests=(\\d+) completion_interrupts=(\\d+)"))) << vm.out();
  EXPECT_EQ(std::stoi(m[1]), 16);
  EXPECT_EQ(std::stoi(m[2]), 16) << "every completion is announced by its own interrupt\n" << vm.out();
}

TEST_F(VirtioDiskTest, MaskedMsixVectorsKeepTheirInterruptsPending) {
  std::string image = make_image(dir_.file("disk.img"), 1 << 20);
  Subprocess vm(run_args({"--disk", image, "--cmdline", "msix-mask=32"}), false);
  ASSERT_EQ(vm.wait(120s), 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("rounds=32 pending_while_masked=32 silent_while_masked=32 delivered_on_unmask=32 "
                          "raced_and_delivered=32 ok"),
            std::string::npos)
      << vm.out();
}

TEST_F(VirtioDiskTest, ThirdPartyBackEndQemuStorageDaemon) {
  if (!have_program("qemu-storage-daemon")) GTEST_SKIP() << "needs qemu-storage-daemon (scripts/setup.sh installs qemu-system-x86)";
  std::string image = make_image(dir_.file("qsd.img"), 64 << 20);
  std::string socket = dir_.file("qsd.sock");
  Subprocess qsd({"/usr/bin/qemu-storage-daemon", "--blockdev", "driver=file,node-name=file0,filename=" + image, "--export",
                  "type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path=" + socket + ",writable=on"},
                 false);
  for (int i = 0; i < 100 && ::access(socket.c_str(), F_OK) != 0; ++i) std::this_thread::sleep_for(50ms);
  Subprocess vm(run_args({"--vhost-user", "type=blk,socket=" + socket, "--cmdline", "blk-disk"}), false);
  int status = vm.wait(120s);
  qsd.signal(SIGTERM);
  qsd.wait(30s);
  ASSERT_EQ(status, 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("written=64 verified=64 flush=ok beyond_end=1 ok"), std::string::npos) << vm.out();
  EXPECT_EQ(verified_sites(image, 131072), kSites);
}

TEST_F(VirtioDiskTest, AnImageInUseIsLocked) {
  std::string image = make_image(dir_.file("busy.img"), 1 << 20);
  std::string shared = make_image(dir_.file("shared.img"), 1 << 20);
  Subprocess first(run_args({"--disk", image, "--disk", shared + ",ro", "--cmdline", "echo"}), true);
  ASSERT_TRUE(first.wait_for("BH-READY echo", 60s)) << first.err();
  for (const std::string& disk : {image, image + ",ro", shared}) {
    Subprocess second(run_args({"--disk", disk, "--cmdline", "hello"}), false);
    EXPECT_EQ(second.wait(30s), 2) << disk;
    EXPECT_NE(second.err().find("is in use by another process"), std::string::npos) << second.err();
  }
  Subprocess reader(run_args({"--disk", shared + ",ro", "--cmdline", "hello"}), false);
  EXPECT_EQ(reader.wait(60s), 0) << "read-only images are shared: " << reader.err();
  first.signal(SIGTERM);
  first.wait(30s);
  Subprocess after(run_args({"--disk", image, "--cmdline", "hello"}), false);
  EXPECT_EQ(after.wait(60s), 0) << "the lock goes with the VM: " << after.err();
}

TEST_F(VirtioDiskTest, VhostUserSocketThatDoesNotExistIsAUsageError) {
  Subprocess vm(run_args({"--vhost-user", "type=blk,socket=" + dir_.file("absent.sock")}), false);
  EXPECT_EQ(vm.wait(30s), 2);
  EXPECT_NE(vm.err().find("absent.sock"), std::string::npos) << vm.err();
}

TEST_F(VirtioDiskTest, SameScenarioOnQemusOwnVirtioScsi) {
  if (!have_program("qemu-system-x86_64")) GTEST_SKIP() << "needs qemu-system-x86_64";
  std::string image = make_image(dir_.file("qemu.img"), 64 << 20);
  Subprocess qemu({"/usr/bin/qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "256M", "-nodefaults", "-no-user-config",
                   "-nographic", "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-device",
                   "virtio-scsi-pci,id=scsi0", "-drive", "file=" + image + ",format=raw,if=none,id=d0", "-device",
                   "scsi-hd,drive=d0,bus=scsi0.0", "-kernel", test_guest(), "-append", "scsi-disk"},
                  false);
  EXPECT_EQ(qemu.wait(120s), 1) << qemu.out() << qemu.err();  // isa-debug-exit: (0 << 1) | 1
  EXPECT_NE(qemu.out().find("written=64 verified=64 oob=5/21/0 badop=5/20/0"), std::string::npos) << qemu.out();
  EXPECT_EQ(verified_sites(image, 131072), kSites);
}

}  // namespace
}  // namespace bulkhead::test
