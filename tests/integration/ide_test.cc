// The IDE controller on a running VM, driven by the test guest's driver (guest/drivers/ide.cc)
// the way ata_piix programs it: ATA PIO and DMA on a disk image (checked in the image
// afterwards), 48-bit addresses beyond 128 GiB on a sparse image, the ATAPI CD-ROM on an ISO
// the test builds (checksums against the file), the modes and options, and QEMU's IDE bugs
// done on purpose. Linux's own ata_piix on it is the nested-lab test.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

uint8_t pattern(uint64_t sector, uint32_t i) { return static_cast<uint8_t>(sector * 131 + i * 7 + 0x5a); }

// Whether `sectors` sectors at `lba` of the image hold what the guest's scenario writes there.
bool image_holds_pattern(const std::string& path, uint64_t lba, uint32_t sectors) {
  std::ifstream image(path, std::ios::binary);
  image.seekg(static_cast<std::streamoff>(lba * 512));
  std::vector<char> data(sectors * 512);
  if (!image.read(data.data(), static_cast<std::streamsize>(data.size()))) return false;
  for (uint32_t s = 0; s < sectors; ++s)
    for (uint32_t i = 0; i < 512; ++i)
      if (static_cast<uint8_t>(data[s * 512 + i]) != pattern(lba + s, i)) return false;
  return true;
}

std::string fnv1a_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint32_t h = 2166136261u;
  char c;
  while (in.get(c)) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  char text[9];
  std::snprintf(text, sizeof text, "%08x", h);
  return text;
}

class IdeTest : public VmTest {
 protected:
  void SetUp() override {
    VmTest::SetUp();
    if (IsSkipped()) return;
    disk_ = dir_.file("disk.img");
    big_ = dir_.file("big.img");
    std::ofstream(disk_).close();
    ASSERT_EQ(::truncate(disk_.c_str(), 64 << 20), 0);
    std::ofstream(big_).close();
    ASSERT_EQ(::truncate(big_.c_str(), 200ll << 30), 0);  // sparse: 200 GiB, a few KiB used
  }
  // An ISO9660 image of a random file, as the CD-ROM's medium; skips loudly without xorriso.
  std::string make_iso() {
    if (!have_program("xorriso")) return "";
    std::string output;
    std::string iso = dir_.file("cd.iso");
    EXPECT_EQ(run_command("mkdir -p " + dir_.file("iso") + " && head -c 500000 /dev/urandom > " +
                              dir_.file("iso/blob.bin") + " && xorriso -as mkisofs -quiet -o " + iso + " " +
                              dir_.file("iso"),
                          &output),
              0)
        << output;
    return iso;
  }
  std::string run_guest(std::vector<std::string> args, const std::string& scenario) {
    args.insert(args.end(), {"--kernel", test_guest(), "--cmdline", scenario});
    Subprocess vm(run_args(args), false);
    EXPECT_EQ(vm.wait(120s), 0) << vm.out() << vm.err();
    EXPECT_EQ(vm.out().find("FAILED"), std::string::npos) << vm.out();
    return vm.out() + vm.err();
  }
  TempDir dir_;
  std::string disk_, big_;
};

TEST_F(IdeTest, DisksAndACdromWorkByPioAndDmaAndLba48) {
  std::string iso = make_iso();
  if (iso.empty()) GTEST_SKIP() << "needs xorriso to build the ISO (scripts/setup.sh installs it)";
  std::string out = run_guest({"--disk", big_ + ",bus=ide", "--disk", disk_ + ",bus=ide", "--cdrom", iso}, "ide");
  EXPECT_NE(out.find("position=0 type=ata model=BULKHEAD HARDDISK sectors=419430400 lba48=1"), std::string::npos) << out;
  EXPECT_NE(out.find("position=1 type=ata model=BULKHEAD HARDDISK sectors=131072"), std::string::npos) << out;
  EXPECT_NE(out.find("position=2 type=atapi model=BULKHEAD ATAPI DVD-ROM config=85c0"), std::string::npos) << out;
  EXPECT_NE(out.find("BH-RESULT ide pio=ok multiple=ok dma=ok lba48=ok verify=ok flush=ok power=ok"), std::string::npos)
      << out;
  // The whole medium, read by PIO and by DMA, is the ISO file.
  const uint64_t blocks = std::filesystem::file_size(iso) / 2048;
  EXPECT_NE(out.find("BH-RESULT ide-cdrom blocks=" + std::to_string(blocks) + " inquiry=ok toc=ok pio=ok dma=ok fnv_pio=" +
                     fnv1a_of(iso) + " fnv_dma=" + fnv1a_of(iso)),
            std::string::npos)
      << out;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(irq14=(\d+) irq15=(\d+))")));
  EXPECT_GT(std::stoul(m[1]), 0u) << "the primary channel interrupts on IRQ 14";
  EXPECT_GT(std::stoul(m[2]), 0u) << "the secondary channel interrupts on IRQ 15";
  // What the guest wrote is in the images: PIO at 2048, DMA at 4096, beyond 2^28 sectors.
  EXPECT_TRUE(image_holds_pattern(big_, 2048, 16));
  EXPECT_TRUE(image_holds_pattern(big_, 4096, 256));
  EXPECT_TRUE(image_holds_pattern(big_, 0x10000010, 8));
  struct stat st;
  ASSERT_EQ(::stat(big_.c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 16 << 20) << "the sparse image stays sparse";
}

TEST_F(IdeTest, FullModePutsDisksOnIdeInOrder) {
  std::string out = run_guest({"--mode", "full", "--disk", disk_, "--disk", big_}, "ide");
  EXPECT_NE(out.find("position=0 type=ata model=BULKHEAD HARDDISK sectors=131072"), std::string::npos) << out;
  EXPECT_NE(out.find("position=1 type=ata model=BULKHEAD HARDDISK sectors=419430400"), std::string::npos) << out;
  EXPECT_NE(out.find("disks=2 cdroms=0"), std::string::npos) << out;
  EXPECT_TRUE(image_holds_pattern(disk_, 2048, 16));
}

TEST_F(IdeTest, QemusIdeBugsAreRefusedCountedAndSurvived) {
  std::string iso = make_iso();
  if (iso.empty()) GTEST_SKIP() << "needs xorriso to build the ISO (scripts/setup.sh installs it)";
  std::string out = run_guest({"--disk", disk_ + ",bus=ide", "--cdrom", iso}, "ide-hostile ide");
  EXPECT_NE(out.find("BH-RESULT ide-hostile short_prd=ok table_outside=ok buffer_mmio=ok no_master=ok "
                     "wrong_direction=ok reset_dma=ok overlong=ok idnf=ok abrt=ok cd_range=ok cd_disk_command=ok "
                     "cd_odd=ok responsive=1"),
            std::string::npos)
      << out;
  // ... and the device went on serving a normal run afterwards.
  EXPECT_NE(out.find("BH-RESULT ide pio=ok multiple=ok dma=ok"), std::string::npos) << out;
  EXPECT_NE(out.find("3 DMA transfers refused"), std::string::npos) << out;
  EXPECT_NE(out.find("1 PRD tables shorter than their transfer"), std::string::npos) << out;
}

TEST_F(IdeTest, BadDriveOptionsAreRefused) {
  expect_usage_error(run_args({"--disk", disk_ + ",bus=ide", "--disk", disk_ + "2,bus=ide", "--disk", big_ + ",bus=ide",
                               "--disk", big_ + "2,bus=ide", "--cdrom", big_}),
                     "the IDE controller has 4 drive positions; 5 disks and CD-ROMs were given");
  expect_usage_error(run_args({"--cdrom", dir_.file("missing.iso")}), "missing.iso");
  expect_usage_error(run_args({"--disk", disk_ + ",bus=floppy"}), "bus");
}

}  // namespace
}  // namespace bulkhead::test
