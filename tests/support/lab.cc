#include "tests/support/lab.h"
#include "tests/support/subprocess.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace bulkhead::test {

int run_command(const std::string& command, std::string* output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buffer[512];
  output->clear();
  while (std::fgets(buffer, sizeof buffer, pipe)) *output += buffer;
  int status = ::pclose(pipe);
  while (!output->empty() && output->back() == '\n') output->pop_back();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string fetch_kernel(std::string* why, const std::string& package) {
  std::string output;
  if (run_command(std::string(BULKHEAD_SOURCE_DIR) + "/tests/lab/fetch-kernel.sh " + package, &output) != 0) {
    *why = "fetch-kernel.sh failed: " + output;
    return "";
  }
  return output.substr(output.rfind('\n') + 1);
}

TempDir::TempDir() {
  char pattern[] = "/tmp/bulkhead-test-XXXXXX";
  path_ = ::mkdtemp(pattern) ? pattern : "";
}

TempDir::~TempDir() {
  std::string output;
  if (!path_.empty()) run_command("rm -rf '" + path_ + "'", &output);
}

std::string make_initramfs(const std::string& kernel_dir, const std::string& scenario, const std::vector<std::string>& modules,
                           const std::vector<std::string>& files, std::string* why, bool drain_console) {
  static TempDir dir;  // lives for the test program; one image per call
  static int count = 0;
  std::string script = dir.file("scenario" + std::to_string(count) + ".sh");
  std::string out = dir.file("initrd" + std::to_string(count++) + ".gz");
  std::ofstream(script) << scenario;
  std::string command = std::string(BULKHEAD_SOURCE_DIR) + "/tests/lab/make-initramfs.sh --kernel-dir '" + kernel_dir +
                        "' --scenario '" + script + "' --out '" + out + "'";
  for (const auto& m : modules) command += " --module " + m;
  for (const auto& f : files) command += " --file '" + f + "'";
  if (drain_console) command += " --drain-console";
  std::string output;
  if (run_command(command, &output) != 0) {
    *why = "make-initramfs.sh failed: " + output;
    return "";
  }
  return out;
}

std::string run_nested_lab(const std::string& kernel_dir, const std::string& initrd, const std::string& append,
                           bool* finished, std::chrono::seconds timeout) {
  // Two L1 CPUs: QEMU 7.2's emulated SVM does not always turn L1's timer interrupt into a
  // #VMEXIT while L2 spins with interrupts off, so on a single L1 CPU an L2 that waits in a
  // loop for another L2 vCPU or for a device process (both L1 threads) froze L1 for good
  // (seen as L1's LAPIC with vector 236 pending in IRR and L2 in smpboot's wait loop).
  // With two, host.sh pins each L2 vCPU thread to one L1 CPU (--vcpu-pin): an L2 vCPU that
  // moved between L1 CPUs sometimes triple-faulted.
  Subprocess l1({"/usr/bin/qemu-system-x86_64", "-accel", "tcg", "-cpu", "EPYC", "-smp", "2", "-m", "2048", "-nographic", "-no-reboot",
                 "-kernel", kernel_dir + "/vmlinuz", "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet " + append},
                false);
  *finished = l1.wait_for("LAB-EXIT", timeout);
  l1.wait(60s);
  // For whoever debugs a lab test: BULKHEAD_LAB_LOG=DIR keeps every L1 console log there.
  if (const char* dir = ::getenv("BULKHEAD_LAB_LOG")) {
    static int count = 0;
    std::ofstream(std::string(dir) + "/lab-" + std::to_string(::getpid()) + "-" + std::to_string(count++) + ".log") << l1.out();
  }
  return l1.out();
}

std::vector<std::string> bulkhead_payload() {
  std::vector<std::string> files;
  // The launcher, every role executable beside it (the device table's included), the test guest.
  for (const auto& entry : std::filesystem::directory_iterator(bin_dir())) {
    std::string name = entry.path().filename();
    if (name == "bulkhead" || name.rfind("bulkhead-", 0) == 0 || name == "bh-lab-console")
      files.push_back(entry.path().string() + ":/opt/bulkhead/" + name);
  }
  return files;
}

std::string lines_with_prefix(const std::string& output, const std::string& prefix) {
  std::string kept;
  for (size_t start = 0; start < output.size();) {
    size_t end = output.find('\n', start);
    end = end == std::string::npos ? output.size() : end + 1;
    if (output.compare(start, prefix.size(), prefix) == 0) kept += output.substr(start + prefix.size(), end - start - prefix.size());
    start = end;
  }
  return kept;
}

}  // namespace bulkhead::test
