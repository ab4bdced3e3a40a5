// Bad input to `bulkhead run`: a one-line error naming the problem, exit status 2, and no
// process left behind.
#include <fstream>

#include "tests/integration/vm_test.h"

namespace bulkhead::test {
namespace {

class LauncherInputTest : public VmTest {
 protected:
  void expect_usage_error(std::vector<std::string> args, const std::string& mentions) {
    VmTest::expect_usage_error(run_args(args), mentions);
  }
  std::string write_file(const std::string& name, const std::string& content) {
    std::string path = "/tmp/bulkhead-test-" + std::to_string(::getpid()) + "-" + name;
    std::ofstream(path) << content;
    files_.push_back(path);
    return path;
  }
  void TearDown() override {
    for (auto& f : files_) ::unlink(f.c_str());
    VmTest::TearDown();
  }
  std::vector<std::string> files_;
};

TEST_F(LauncherInputTest, MissingKernel) { expect_usage_error({"--kernel", "/nonexistent/vmlinux"}, "/nonexistent/vmlinux"); }

TEST_F(LauncherInputTest, KernelThatIsNotAKernel) {
  expect_usage_error({"--kernel", write_file("junk", std::string(8192, 'j'))}, "neither an ELF");
}

TEST_F(LauncherInputTest, ElfWithoutPvhNote) { expect_usage_error({"--kernel", "/bin/true"}, "PVH"); }

TEST_F(LauncherInputTest, KernelIsADirectory) { expect_usage_error({"--kernel", "/tmp"}, "not a regular file"); }

TEST_F(LauncherInputTest, MissingInitrd) { expect_usage_error({"--initrd", "/nonexistent/initrd"}, "initrd"); }

TEST_F(LauncherInputTest, MemoryNotASize) { expect_usage_error({"--memory", "lots"}, "'lots'"); }

TEST_F(LauncherInputTest, MemoryTooLarge) { expect_usage_error({"--memory", "64T"}, "exceeds this host"); }

TEST_F(LauncherInputTest, MemoryTooSmall) { expect_usage_error({"--memory", "1M"}, "too small"); }

TEST_F(LauncherInputTest, ZeroCpus) { expect_usage_error({"--cpus", "0"}, "--cpus"); }

TEST_F(LauncherInputTest, CpusNotANumber) { expect_usage_error({"--cpus", "many"}, "--cpus"); }

TEST_F(LauncherInputTest, VcpuPinWithTooFewCpus) {
  expect_usage_error({"--cpus", "2", "--vcpu-pin", "0"}, "--vcpu-pin '0' names 1 host CPUs for 2 vCPUs");
}

TEST_F(LauncherInputTest, VcpuPinOnACpuThatIsNotThere) {
  expect_usage_error({"--vcpu-pin", "4095"}, "host CPU 4095 does not exist or is not one this process may use");
}

TEST_F(LauncherInputTest, UnknownFlag) { expect_usage_error({"--turbo"}, "--turbo"); }

TEST_F(LauncherInputTest, BadSerialSpec) { expect_usage_error({"--serial", "tcp=1234"}, "tcp=1234"); }

TEST_F(LauncherInputTest, SerialLogInMissingDirectory) {
  expect_usage_error({"--serial", "file=/nonexistent/dir/log"}, "/nonexistent/dir/log");
}

TEST_F(LauncherInputTest, KernelTooBigForMemoryIsReportedByTheCore) {
  // A bzImage header asking for more memory than the VM has: only the core can tell.
  std::string image(4096 + 1024, '\0');
  auto put = [&](size_t offset, uint64_t value, size_t size) {
    for (size_t i = 0; i < size; ++i) image[offset + i] = static_cast<char>(value >> (8 * i));
  };
  put(0x1f1, 1, 1);              // setup sectors
  put(0x1fe, 0xaa55, 2);         // boot flag
  put(0x201, 0x66, 1);           // header length
  image.replace(0x202, 4, "HdrS");
  put(0x206, 0x020f, 2);         // protocol 2.15
  put(0x211, 1, 1);              // loaded high
  put(0x236, 1, 2);              // 64-bit entry
  put(0x238, 2047, 4);           // command line size
  put(0x258, 16 << 20, 8);       // pref_address
  put(0x260, 256u << 20, 4);     // init_size: more than the VM gets
  expect_usage_error({"--kernel", write_file("big-bzimage", image), "--memory", "32M"}, "--memory");
}

TEST_F(LauncherInputTest, HelpDocumentsEveryRunOption) {
  Subprocess vm({bulkhead(), "run", "--help"}, false);
  EXPECT_EQ(vm.wait(30s), 0);
  for (const char* option : {"--kernel", "--initrd", "--cmdline", "--memory", "--cpus", "--serial"})
    EXPECT_NE(vm.out().find(option), std::string::npos) << option;
}

}  // namespace
}  // namespace bulkhead::test
