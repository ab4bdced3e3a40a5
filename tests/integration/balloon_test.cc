// virtio-balloon and guest memory on a running VM, with the test guest's driver
// (guest/drivers/virtio_balloon.cc): inflated pages leave the core's guest-RAM memfd (its
// allocated blocks and the core's PSS drop), come back zeroed and usable, free page reports
// return memory, statistics arrive; hostile page numbers are counted; RAM in 2 MiB huge pages,
// with the balloon on top of it; and the options' errors. Linux's virtio_balloon on it is the
// nested-lab test.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

// Bytes of guest RAM the core's memfd holds (its allocated blocks, through /proc/<pid>/fd).
uint64_t guest_ram_allocated(pid_t core) {
  std::string dir = "/proc/" + std::to_string(core) + "/fd";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (target.find("memfd:bulkhead-guest-ram") == std::string::npos) continue;
    struct stat st;
    if (::stat(entry.path().c_str(), &st) == 0) return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  ADD_FAILURE() << "no guest-RAM memfd in " << dir;
  return 0;
}

uint64_t pss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  uint64_t kib = 0;
  while (in >> key) {
    if (key == "Pss:") {
      in >> kib;
      return kib << 10;
    }
    in.ignore(4096, '\n');
  }
  return 0;
}

uint64_t hugepages(const char* what) {
  std::ifstream in(std::string("/sys/kernel/mm/hugepages/hugepages-2048kB/") + what);
  uint64_t n = 0;
  in >> n;
  return n;
}

void set_hugepages(uint64_t n) {
  std::ofstream("/proc/sys/vm/nr_hugepages") << n;
}

class BalloonTest : public VmTest {};

TEST_F(BalloonTest, InflatedPagesLeaveGuestRamAndComeBackZeroedAndUsable) {
  constexpr uint64_t kBallooned = 32ull << 20;
  Subprocess vm(run_args({"--memory", "128M", "--balloon", "target=96M,free-page-reporting=on,stats-interval=1",
                          "--cmdline", "balloon=sync"}));
  ASSERT_TRUE(vm.wait_for("BH-READY balloon-touched", 60s)) << vm.out() << vm.err();
  std::map<std::string, pid_t> roles = roles_of(vm.pid());
  ASSERT_TRUE(roles.count("bh-core"));
  pid_t core = roles.at("bh-core");
  uint64_t ram_before = guest_ram_allocated(core), pss_before = pss_bytes(core);
  EXPECT_GE(ram_before, kBallooned) << "the guest touched the pages it is about to give away";
  vm.write_stdin("\n");
  ASSERT_TRUE(vm.wait_for("BH-READY balloon-inflated", 60s)) << vm.out() << vm.err();
  uint64_t ram_after = guest_ram_allocated(core), pss_after = pss_bytes(core);
  EXPECT_GE(ram_before - std::min(ram_before, ram_after), kBallooned * 8 / 10)
      << "the memfd's allocated blocks: " << (ram_before >> 20) << " MiB before, " << (ram_after >> 20) << " after";
  EXPECT_GE(pss_before - std::min(pss_before, pss_after), kBallooned * 8 / 10)
      << "the core's PSS: " << (pss_before >> 20) << " MiB before, " << (pss_after >> 20) << " after";
  // Long enough for the device to ask for fresh statistics (stats-interval=1).
  ASSERT_TRUE(vm.wait_for("guest memory statistics: swap-in=1", 10s, true)) << vm.err();
  vm.write_stdin("\n");
  EXPECT_EQ(vm.wait(60s), 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("BH-RESULT balloon target=8192 zeroed=8192 verified=8192 reported_zero=1024"), std::string::npos)
      << vm.out();
  std::smatch m;
  std::string out = vm.out();
  ASSERT_TRUE(std::regex_search(out, m, std::regex("stats_refreshed=(\\d+)"))) << out;
  EXPECT_GE(std::stoi(m[1]), 1);
  EXPECT_NE(vm.err().find("8192 pages inflated, 8192 deflated, 36 MiB returned to the host (4 MiB of it reported free)"),
            std::string::npos)
      << vm.err();
}

TEST_F(BalloonTest, HostilePageNumbersAreIgnoredAndCountedAndTheDeviceKeepsWorking) {
  Subprocess vm(run_args({"--memory", "64M", "--balloon", "on", "--cmdline", "balloon-hostile"}));
  EXPECT_EQ(vm.wait(60s), 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("BH-RESULT balloon-hostile result=ok"), std::string::npos) << vm.out();
  std::smatch m;
  std::string err = vm.err();
  ASSERT_TRUE(std::regex_search(err, m,
                                std::regex("(\\d+) outside guest RAM, (\\d+) already in the balloon, (\\d+) deflated but "
                                           "not in it, (\\d+) beyond a buffer's limit; (\\d+) malformed buffers")))
      << err;
  EXPECT_EQ(m[1], "4");
  EXPECT_EQ(m[3], "1");
  EXPECT_EQ(m[4], "262144") << "2 MiB of page numbers in one buffer, cut at 1 MiB";
  EXPECT_EQ(m[5], "2");
}

TEST_F(BalloonTest, BadOptionsAreOneLineErrors) {
  expect_usage_error(run_args({"--memory", "64M", "--balloon", "target=1G"}), "at most the VM's memory (64M)");
  expect_usage_error(run_args({"--balloon", "size=1G"}), "unknown option 'size'");
  expect_usage_error(run_args({"--balloon", "stats-interval=soon"}), "stats-interval takes seconds");
  expect_usage_error(run_args({"--balloon", "free-page-reporting=yes"}), "free-page-reporting takes on or off");
  expect_usage_error(run_args({"--memory", "64M,hugepages=maybe"}), "hugepages takes on or off");
  expect_usage_error(run_args({"--memory", "63M,hugepages=on"}), "multiple of 2M");
}

// Guest RAM in 2 MiB pages (this test sizes the host's pool and puts it back).
class HugepagesTest : public VmTest {
 protected:
  void SetUp() override {
    VmTest::SetUp();
    if (IsSkipped()) return;
    saved_ = hugepages("nr_hugepages");
    if (::access("/proc/sys/vm/nr_hugepages", W_OK) != 0) GTEST_SKIP() << "needs root to size the hugetlb pool";
  }
  void TearDown() override {
    VmTest::TearDown();
    if (!IsSkipped()) set_hugepages(saved_);
  }
  uint64_t saved_ = 0;
};

TEST_F(HugepagesTest, TooFewFreeHugePagesIsAOneLineErrorNamingBoth) {
  set_hugepages(10);
  expect_usage_error(run_args({"--memory", "64M,hugepages=on"}), "needs 32 free 2 MiB huge pages and 10 are free");
}

TEST_F(HugepagesTest, RamComesFromThePoolAndTheBalloonReturnsWholeHugePages) {
  set_hugepages(hugepages("nr_hugepages") + 80);
  ASSERT_GE(hugepages("free_hugepages") - hugepages("resv_hugepages"), 64u) << "the host could not grow its pool";
  uint64_t free_before = hugepages("free_hugepages") - hugepages("resv_hugepages");
  // Target 112M: the balloon takes 16 MiB (8 huge pages).
  Subprocess vm(run_args({"--memory", "128M,hugepages=on", "--balloon", "target=112M,free-page-reporting=on", "--cmdline",
                          "balloon=sync,huge"}));
  ASSERT_TRUE(vm.wait_for("BH-READY balloon-touched", 60s)) << vm.out() << vm.err();
  EXPECT_EQ(free_before - (hugepages("free_hugepages") - hugepages("resv_hugepages")), 64u)
      << "all of guest RAM is reserved from the pool";
  uint64_t free_touched = hugepages("free_hugepages");
  vm.write_stdin("\n");
  ASSERT_TRUE(vm.wait_for("BH-READY balloon-inflated", 60s)) << vm.out() << vm.err();
  EXPECT_EQ(hugepages("free_hugepages") - free_touched, 8u) << "8 whole huge pages went back to the pool";
  vm.write_stdin("\n");
  EXPECT_EQ(vm.wait(60s), 0) << vm.out() << vm.err();
  EXPECT_NE(vm.out().find("zeroed=4096 verified=4096 reported_zero=1024"), std::string::npos) << vm.out();
  EXPECT_EQ(hugepages("free_hugepages") - hugepages("resv_hugepages"), free_before) << "all pages back after exit";
}

}  // namespace
}  // namespace bulkhead::test
