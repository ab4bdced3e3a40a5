// A real Debian kernel on Bulkhead. On this PVM host kernel code runs emulated, so only
// early boot is reachable (see ../shared/host-facts.md); the full boot is the nested lab's job.
#include <signal.h>

#include <cstdio>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

class LinuxBootTest : public VmTest {
 protected:
  void SetUp() override {
    VmTest::SetUp();
    if (IsSkipped()) return;
    std::string why;
    kernel_dir_ = fetch_kernel(&why);
    if (kernel_dir_.empty()) GTEST_SKIP() << "no Debian kernel: " << why;
  }
  // Boots `image`, waits for `marker` on the console, then stops the VM with SIGTERM.
  void boot_until(const std::string& image, const std::string& cmdline, const std::string& marker) {
    auto start = std::chrono::steady_clock::now();
    Subprocess vm(run_args({"--kernel", kernel_dir_ + "/" + image, "--memory", "512M", "--cmdline", cmdline}), false);
    bool seen = vm.wait_for(marker, 90s);
    auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    vm.signal(SIGTERM);
    EXPECT_EQ(vm.wait(30s), 128 + SIGTERM) << vm.err();
    EXPECT_TRUE(seen) << "no '" << marker << "' within 90 s; console:\n" << vm.out() << "\nlauncher:\n" << vm.err();
    RecordProperty("seconds_to_marker", std::to_string(seconds));
    std::printf("'%s' after %.1f s\n", marker.c_str(), seconds);
  }
  std::string kernel_dir_;
};

TEST_F(LinuxBootTest, VmlinuxThroughPvhPrintsItsBanner) {
  boot_until("vmlinux", "console=ttyS0 earlyprintk=serial", "Linux version 6.");
}

TEST_F(LinuxBootTest, BzImageDecompressorRuns) {
  // Debian builds without CONFIG_X86_VERBOSE_BOOTUP, so the decompressor's only line of its
  // own is the KASLR notice that `nokaslr` triggers, printed just before decompression.
  boot_until("vmlinuz", "console=ttyS0 earlyprintk=serial nokaslr", "KASLR disabled: 'nokaslr' on cmdline.");
}

}  // namespace
}  // namespace bulkhead::test
