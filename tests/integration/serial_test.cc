// The serial device process with every backend, in both directions, with interrupts, and
// under a reader that stalls.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/integration/vm_test.h"

namespace bulkhead::test {
namespace {

class SerialTest : public VmTest {};

// Reads from `fd` until `needle` appears or the deadline passes.
bool read_until(int fd, std::string& text, const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (text.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buffer[1024];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) text.append(buffer, static_cast<size_t>(n));
    else if (n == 0 || errno != EAGAIN) std::this_thread::sleep_for(50ms);
  }
  return true;
}

std::string temp_path(const std::string& name) {
  return "/tmp/bulkhead-test-" + std::to_string(::getpid()) + "-" + name;
}

TEST_F(SerialTest, EchoesALineBothWaysOverStdio) {
  Subprocess vm(run_args({"--cmdline", "echo"}));
  ASSERT_TRUE(vm.wait_for("BH-READY echo", 60s)) << vm.out() << vm.err();
  vm.write_stdin("hello bulkhead\n");
  ASSERT_TRUE(vm.wait_for("BH-ECHO hello bulkhead", 30s)) << vm.out();
  EXPECT_EQ(vm.wait(30s), 0);
}

TEST_F(SerialTest, InterruptsForTransmitterEmptyAndReceivedData) {
  Subprocess vm(run_args({"--cmdline", "serial-irq"}));
  ASSERT_TRUE(vm.wait_for("BH-READY serial-irq", 60s)) << vm.out() << vm.err();
  vm.write_stdin("interrupt-driven input\n");
  EXPECT_EQ(vm.wait(60s), 0) << vm.out();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vm.out(), m, std::regex("thre_irqs=(\\d+) rx_irqs=(\\d+) rx=(\\S+)"))) << vm.out();
  EXPECT_GE(std::stoi(m[1]), 1) << "enabling ETBEI with THR empty interrupts";
  EXPECT_GE(std::stoi(m[2]), 1) << "received bytes interrupt";
  EXPECT_EQ(m[3], "interrupt-driven") << "bytes read in the handler, in order";
}

TEST_F(SerialTest, FileBackendGetsTheWholeConsole) {
  std::string log = temp_path("console.log");
  Subprocess vm(run_args({"--serial", "file=" + log, "--cmdline", "hello"}), false);
  EXPECT_EQ(vm.wait(60s), 0) << vm.err();
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("BH-DONE status=0"), std::string::npos) << text.str();
  EXPECT_EQ(vm.out(), "") << "nothing on stdout when the console goes to a file";
  ::unlink(log.c_str());
}

TEST_F(SerialTest, UnixSocketBackendServesAClient) {
  std::string path = temp_path("serial.sock");
  Subprocess vm(run_args({"--serial", "unix=" + path, "--cmdline", "echo"}), false);
  int fd = -1;
  for (int i = 0; i < 200 && fd < 0; ++i) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) fd = s;
    else ::close(s), std::this_thread::sleep_for(25ms);
  }
  ASSERT_GE(fd, 0) << "the launcher listens on " << path;
  UniqueFd client(fd);
  std::string text;
  ASSERT_TRUE(read_until(fd, text, "BH-READY echo", 60s)) << text;
  ASSERT_EQ(::write(fd, "over the socket\n", 16), 16);
  EXPECT_TRUE(read_until(fd, text, "BH-ECHO over the socket", 30s)) << text;
  EXPECT_EQ(vm.wait(30s), 0) << vm.err();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket file is removed at exit";
}

TEST_F(SerialTest, UnixSocketPathThatIsNotASocketIsRefused) {
  std::string path = temp_path("not-a-socket");
  { std::ofstream(path) << "x"; }
  Subprocess vm(run_args({"--serial", "unix=" + path}), false);
  EXPECT_EQ(vm.wait(30s), 2);
  EXPECT_NE(vm.err().find("is not a socket"), std::string::npos) << vm.err();
  ::unlink(path.c_str());
}

TEST_F(SerialTest, PtyBackendAcceptsALateClient) {
  Subprocess vm(run_args({"--serial", "pty", "--cmdline", "echo"}), false);
  ASSERT_TRUE(vm.wait_for("serial console on /dev/pts/", 30s, true)) << vm.err();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(vm.err(), m, std::regex("(/dev/pts/\\d+)")));
  std::this_thread::sleep_for(300ms);  // the guest starts before anyone opens the pty
  UniqueFd pty(::open(m[1].str().c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  ASSERT_TRUE(pty.valid()) << std::strerror(errno);
  std::string text;
  std::thread poke([&] {
    // The READY line may have been discarded while nobody had the pty open: keep asking.
    for (int i = 0; i < 40 && text.find("BH-ECHO") == std::string::npos; ++i) {
      [[maybe_unused]] ssize_t n = ::write(pty.get(), "via pty\n", 8);
      std::this_thread::sleep_for(500ms);
    }
  });
  bool echoed = read_until(pty.get(), text, "BH-ECHO via pty", 30s);
  poke.join();
  EXPECT_TRUE(echoed) << text;
  EXPECT_EQ(vm.wait(30s), 0) << vm.err();
}

TEST_F(SerialTest, StalledReaderLosesNothing) {
  constexpr int kLines = 1200;  // 77 KB: more than the pipe and the device's 64 KiB buffer
  Subprocess vm(run_args({"--cmdline", "flood=" + std::to_string(kLines)}), false);
  vm.set_stdout_pipe_size(4096);
  vm.pause_reading(8s);
  EXPECT_TRUE(vm.running()) << "the guest waits for the console instead of finishing";
  ASSERT_EQ(vm.wait(120s), 0) << vm.err();
  std::istringstream in(vm.out());
  std::string line;
  int next = 0;
  while (std::getline(in, line)) {
    if (line.rfind("BH-FLOOD ", 0) != 0) continue;
    char expected[80];
    std::snprintf(expected, sizeof expected, "BH-FLOOD %08d abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNO\r", next);
    ASSERT_EQ(line, expected) << "line " << next << " damaged or out of order";
    ++next;
  }
  EXPECT_EQ(next, kLines);
  EXPECT_EQ(vm.err().find("dropped"), std::string::npos) << vm.err();
}

}  // namespace
}  // namespace bulkhead::test
