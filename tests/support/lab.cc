#include "tests/support/lab.h"
#include "tests/support/subprocess.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/unique_fd.h"

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

namespace {

// What QEMU's human monitor at `socket` answers to `command`, read until its next prompt
// (at most a few seconds); "" if it cannot be reached.
std::string ask_monitor(const std::string& socket, const std::string& command) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (socket.size() >= sizeof address.sun_path) return "";
  std::strcpy(address.sun_path, socket.c_str());
  // A socket of our own, connected to the monitor QEMU listens on.
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return "";
  std::string line = command + "\n", reply;
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) return "";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  // The banner's prompt comes first; the answer ends with the prompt after the command's echo.
  auto answered = [&] {
    size_t echo = reply.find(command);
    return echo != std::string::npos && reply.find("(qemu)", echo) != std::string::npos;
  };
  while (!answered() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 500) <= 0) continue;
    char buffer[4096];
    // Into a local buffer, from our own socket.
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n <= 0) break;
    reply.append(buffer, static_cast<size_t>(n));
  }
  return reply;
}

}  // namespace

std::string run_nested_lab(const std::string& kernel_dir, const std::string& initrd, const std::string& append,
                           bool* finished, std::chrono::seconds timeout) {
  // Three L1 CPUs, L1's device interrupts on CPU 0 (irqaffinity=0), and host.sh pins every L2
  // vCPU thread to CPU 1 or 2 (--vcpu-pin):
  // - on a single L1 CPU, QEMU 7.2's emulated SVM did not always turn L1's timer interrupt into
  //   a #VMEXIT while L2 spun with interrupts off, so an L2 waiting in a loop for another L2
  //   vCPU or for a device process froze L1 for good (vector 236 pending in L1's IRR);
  // - the L2 vCPU that ran on L1's CPU 0 triple-faulted at a random point of its boot, nearly
  //   always while it wrote its console: in about half the runs of the PVH scenario, under
  //   QEMU 7.2 and 10.0 alike, and always the vCPU pinned there (vCPU 0 when pinned 0,1,
  //   vCPU 1 when pinned 1,0); none in the runs since (README, Host notes).
  static int runs = 0;
  std::string monitor = "/tmp/bulkhead-lab-" + std::to_string(::getpid()) + "-" + std::to_string(runs++) + ".monitor";
  std::vector<std::string> argv = {"/usr/bin/qemu-system-x86_64", "-accel", "tcg", "-cpu", "EPYC", "-smp", "3", "-m", "2048",
                                    "-nographic", "-no-reboot", "-monitor", "unix:" + monitor + ",server=on,wait=off",
                                    "-kernel", kernel_dir + "/vmlinuz", "-initrd", initrd,
                                    "-append", "console=ttyS0 panic=-1 quiet irqaffinity=0 " + append};
  // To compare with another QEMU build (README, Host notes).
  if (const char* qemu = ::getenv("BULKHEAD_LAB_QEMU")) argv[0] = qemu;
  if (const char* data = ::getenv("BULKHEAD_LAB_QEMU_DATA")) argv.insert(argv.end(), {"-L", data, "-L", "/usr/share/seabios"});
  Subprocess l1(argv, false);
  *finished = l1.wait_for("LAB-EXIT", timeout);
  std::string hang;
  if (!*finished) {
    // Where each L1 CPU is stuck (halted or not, its RIP and state), for whoever debugs it;
    // host.sh printed where L1's kernel text starts.
    for (const char* command : {"info cpus", "info registers -a"}) {
      std::istringstream reply(ask_monitor(monitor, command));
      for (std::string line; std::getline(reply, line);) {
        std::erase_if(line, [](char c) { return c == '\r'; });
        // Leaves out the banner, the prompts with their echo, and the FPU and vector registers.
        bool noise = line.empty() || line.rfind("QEMU ", 0) == 0 || line.rfind("(qemu)", 0) == 0;
        for (const char* kind : {"FPR", "YMM", "XMM", "FCW", "DR"}) noise |= line.rfind(kind, 0) == 0;
        if (!noise) hang += "LAB-HANG| " + line + "\n";
      }
    }
    ask_monitor(monitor, "quit");
  }
  l1.wait(60s);
  ::unlink(monitor.c_str());
  std::string out = l1.out() + hang;
  // For whoever debugs a lab test: BULKHEAD_LAB_LOG=DIR keeps every L1 console log there.
  if (const char* dir = ::getenv("BULKHEAD_LAB_LOG"))
    std::ofstream(std::string(dir) + "/lab-" + std::to_string(::getpid()) + "-" + std::to_string(runs - 1) + ".log") << out;
  return out;
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
