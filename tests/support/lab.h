// Real Linux guests for tests: Debian's kernel (tests/lab/fetch-kernel.sh) and busybox
// initramfs images with a scenario script (tests/lab/make-initramfs.sh).
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace bulkhead::test {

// The kernel directory (vmlinuz, vmlinux, lib/modules), or "" with the reason in *why.
std::string fetch_kernel(std::string* why, const std::string& package = "linux-image-cloud-amd64");

// Builds an initramfs running `scenario` (busybox sh) after loading `modules`; `files` are
// "host-path:guest-path". `drain_console`: the scenario's output is all sent before the
// power-off (make-initramfs.sh --drain-console; for guests whose console is under test).
// Returns its path (in a fresh temporary directory), or "" with *why.
std::string make_initramfs(const std::string& kernel_dir, const std::string& scenario,
                           const std::vector<std::string>& modules, const std::vector<std::string>& files,
                           std::string* why, bool drain_console = false);

// make_initramfs file specs that put Bulkhead's executables (every bulkhead-* beside the
// launcher), the test guest and the lab's console driver (bh-lab-console) into /opt/bulkhead
// (their shared libraries come along).
std::vector<std::string> bulkhead_payload();

// Boots the nested lab's L1: Debian's kernel with `initrd` under QEMU TCG with an emulated AMD
// CPU (SVM, so kvm-amd gives /dev/kvm inside), 2 GiB, extra kernel arguments `append`.
// Returns the console output; *finished tells whether the scenario reached LAB-EXIT within
// `timeout`. With BULKHEAD_LAB_LOG=DIR in the environment, the output is also kept in DIR.
std::string run_nested_lab(const std::string& kernel_dir, const std::string& initrd, const std::string& append,
                           bool* finished, std::chrono::seconds timeout = std::chrono::seconds(300));

// The lines of `output` that start with `prefix`, without it.
std::string lines_with_prefix(const std::string& output, const std::string& prefix);

// A fresh temporary directory, removed with everything in it by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command; returns its exit status and puts its output in *output.
int run_command(const std::string& command, std::string* output);

}  // namespace bulkhead::test
