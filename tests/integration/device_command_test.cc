// `bulkhead device`: bad input and the socket's life cycle.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <fstream>
#include <thread>

#include "tests/integration/vm_test.h"
#include "tests/support/lab.h"

namespace bulkhead::test {
namespace {

class DeviceCommandTest : public VmTest {
 protected:
  void expect_usage_error(std::vector<std::string> args, const std::string& mentions) {
    args.insert(args.begin(), {bulkhead(), "device"});
    VmTest::expect_usage_error(args, mentions);
  }
  std::string image() {
    std::string path = dir_.file("disk.img");
    std::ofstream(path, std::ios::binary) << std::string(1 << 20, '\0');
    return path;
  }
  static int connect_to(const std::string& path) {
    int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(s);
      return -1;
    }
    return s;
  }
  TempDir dir_;
};

TEST_F(DeviceCommandTest, MissingImage) {
  expect_usage_error({"virtio-scsi", "--socket", dir_.file("s"), "--disk", "/nonexistent.img"}, "/nonexistent.img");
}

TEST_F(DeviceCommandTest, SocketInMissingDirectory) {
  expect_usage_error({"virtio-scsi", "--socket", "/nonexistent/dir/s.sock", "--disk", image()}, "/nonexistent/dir/s.sock");
}

TEST_F(DeviceCommandTest, UnknownKind) { expect_usage_error({"virtio-gpu", "--socket", dir_.file("s"), "--disk", image()}, "virtio-gpu"); }

TEST_F(DeviceCommandTest, UnknownDiskOption) {
  expect_usage_error({"virtio-scsi", "--socket", dir_.file("s"), "--disk", image() + ",rw"}, "unknown option");
}

TEST_F(DeviceCommandTest, ImageNotAMultipleOfTheBlockSize) {
  std::string odd = dir_.file("odd.img");
  std::ofstream(odd) << std::string(1000, 'x');
  expect_usage_error({"virtio-scsi", "--socket", dir_.file("s"), "--disk", odd}, "not a multiple of 512");
}

TEST_F(DeviceCommandTest, SocketAndFdTogether) {
  expect_usage_error({"virtio-scsi", "--socket", dir_.file("s"), "--fd", "0", "--disk", image()}, "exactly one");
}

TEST_F(DeviceCommandTest, FdThatIsNotASocket) { expect_usage_error({"virtio-scsi", "--fd", "0", "--disk", image()}, "--fd 0"); }

TEST_F(DeviceCommandTest, ReplacesAStaleSocketAndServesReconnects) {
  std::string path = dir_.file("scsi.sock");
  {
    // A stale socket file: bound, then its owner went away.
    int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(s);
  }
  Subprocess device({bulkhead(), "device", "virtio-scsi", "--socket", path, "--disk", image()}, false);
  ASSERT_TRUE(device.wait_for("listening on", 10s, true)) << device.err();
  for (int round = 0; round < 2; ++round) {
    int fd = connect_to(path);
    ASSERT_GE(fd, 0) << "round " << round;
    // GET_FEATURES, the first message any front-end sends.
    uint32_t header[3] = {1, 1, 0};
    ASSERT_EQ(::write(fd, header, sizeof header), 12);
    uint32_t reply[5];
    ASSERT_EQ(::read(fd, reply, sizeof reply), 20) << "the device process answers";
    EXPECT_EQ(reply[1], 0x5u);
    ::close(fd);
    ASSERT_TRUE(device.wait_for("waiting for the next one", 10s, true)) << device.err();
    device.wait_for("\n", 0s, true);
  }
  device.signal(SIGTERM);
  EXPECT_EQ(device.wait(30s), 128 + SIGTERM);
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket removed at exit";
}

TEST_F(DeviceCommandTest, EachFrontEndGetsAConfinedDeviceProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "confinement needs root; this test runs as uid " << ::geteuid();
  std::string path = dir_.file("confined.sock");
  Subprocess device({bulkhead(), "device", "virtio-scsi", "--socket", path, "--disk", image()}, false);
  ASSERT_TRUE(device.wait_for("listening on", 10s, true)) << device.err();
  int fd = connect_to(path);
  ASSERT_GE(fd, 0);
  uint32_t header[3] = {1, 1, 0};  // GET_FEATURES
  ASSERT_EQ(::write(fd, header, sizeof header), 12);
  uint32_t reply[5];
  ASSERT_EQ(::read(fd, reply, sizeof reply), 20) << "the device process answers";
  std::map<std::string, pid_t> roles = roles_of(device.pid());
  ASSERT_EQ(roles.count("bh-virtio-scsi"), 1u) << device.err();
  pid_t pid = roles["bh-virtio-scsi"];
  EXPECT_EQ(proc_status(pid, "Seccomp"), "2");
  EXPECT_EQ(proc_status(pid, "NoNewPrivs"), "1");
  EXPECT_EQ(proc_status(pid, "CapEff"), "0000000000000000");
  EXPECT_GE(std::stoul(proc_status(pid, "Uid")), 1900000000ul) << "a uid of its own";
  ::close(fd);
  device.signal(SIGTERM);
  EXPECT_EQ(device.wait(30s), 128 + SIGTERM);
}

TEST_F(DeviceCommandTest, ASocketInUseIsRefused) {
  std::string path = dir_.file("busy.sock");
  Subprocess first({bulkhead(), "device", "virtio-scsi", "--socket", path, "--disk", image()}, false);
  ASSERT_TRUE(first.wait_for("listening on", 10s, true)) << first.err();
  expect_usage_error({"virtio-scsi", "--socket", path, "--disk", image()}, "in use");
  first.signal(SIGTERM);
  first.wait(30s);
}

}  // namespace
}  // namespace bulkhead::test
