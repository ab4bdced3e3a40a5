#include "launcher/options.h"
#include "launcher/supervisor.h"
#include "launcher/vm_plan.h"
#include "device-procs/serial/kind.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace bulkhead::launcher {
namespace {

TEST(RestartPolicy, IsCountPerSeconds) {
  RestartPolicy p = parse_restart_policy("5/60");
  EXPECT_EQ(p.max_restarts, 5u);
  EXPECT_EQ(p.window, std::chrono::seconds(60));
  EXPECT_EQ(parse_restart_policy("0/1").max_restarts, 0u) << "never restart";
  for (const char* bad : {"", "5", "/60", "5/", "5/0", "-1/60", "5/60s", "a/b", "9999999/60", "5/999999"}) {
    try {
      parse_restart_policy(bad);
      ADD_FAILURE() << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--device-restarts '" + std::string(bad) + "' is not COUNT/SECONDS"),
                std::string::npos) << e.what();
    }
  }
}

// A device process's report reaches the operator's terminal only in a plain shape.
TEST(DeviceReport, IsPassedOnOnlyWithFewPlainValues) {
  ipc::DeviceReport report;
  for (const char* name : {"swap-in", "free", "hugetlb-allocations"}) report.add_values()->set_name(name);
  EXPECT_TRUE(well_formed(report));
  ipc::DeviceReport escape = report;
  escape.add_values()->set_name("\x1b[2Jfree");
  EXPECT_FALSE(well_formed(escape)) << "a terminal escape";
  ipc::DeviceReport spaced = report;
  spaced.add_values()->set_name("free memory");
  EXPECT_FALSE(well_formed(spaced));
  ipc::DeviceReport unnamed = report;
  unnamed.add_values();
  EXPECT_FALSE(well_formed(unnamed));
  ipc::DeviceReport many;
  for (int i = 0; i < 33; ++i) many.add_values()->set_name("v" + std::to_string(i));
  EXPECT_FALSE(well_formed(many)) << "33 values";
  many.mutable_values()->RemoveLast();
  EXPECT_TRUE(well_formed(many)) << "32 values";
  ipc::DeviceReport long_name;
  long_name.add_values()->set_name(std::string(33, 'a'));
  EXPECT_FALSE(well_formed(long_name));
  ipc::DeviceReport long_error;
  long_error.set_error(std::string(201, 'e'));
  EXPECT_FALSE(well_formed(long_error));
}

TEST(VcpuPin, IsOneAllowedHostCpuPerVcpu) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  CPU_SET(0, &allowed);
  CPU_SET(3, &allowed);
  EXPECT_EQ(parse_vcpu_pin("3,0", 2, allowed), (std::vector<uint32_t>{3, 0}));
  EXPECT_EQ(parse_vcpu_pin("3,3", 2, allowed), (std::vector<uint32_t>{3, 3})) << "two vCPUs may share a CPU";
  for (auto [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"", "is not a list of host CPU numbers"},
           {"0,", "is not a list of host CPU numbers"},
           {"0,-3", "is not a list of host CPU numbers"},
           {"a,b", "is not a list of host CPU numbers"},
           {"0,1", "host CPU 1 does not exist or is not one this process may use"},
           {"0,99999", "is not a list of host CPU numbers"},
           {"0", "names 1 host CPUs for 2 vCPUs"},
           {"0,3,0", "names 3 host CPUs for 2 vCPUs"}}) {
    try {
      parse_vcpu_pin(text, 2, allowed);
      ADD_FAILURE() << text;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--vcpu-pin '" + text + "'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  }
}

TEST(MemorySize, AcceptsUnitsAndPlainMiB) {
  EXPECT_EQ(parse_memory_size("256M"), 256ull << 20);
  EXPECT_EQ(parse_memory_size("256"), 256ull << 20) << "a plain number is MiB, as in QEMU";
  EXPECT_EQ(parse_memory_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_memory_size("2g"), 2ull << 30);
  EXPECT_EQ(parse_memory_size("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_memory_size("65536K"), 64ull << 20);
  EXPECT_EQ(parse_memory_size("1T"), 1ull << 40);
  EXPECT_EQ(parse_memory_size("4096B"), 4096u);
}

TEST(MemorySize, RejectsWhatIsNotASize) {
  for (const char* bad : {"", "abc", "M", "12Q", "1.5G", "-1G", "99999999999999999999", "18446744073709551615G"})
    EXPECT_THROW(parse_memory_size(bad), InputError) << bad;
}

TEST(MemorySize, ErrorNamesTheInput) {
  try {
    parse_memory_size("lots");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'lots'"), std::string::npos);
  }
}

using devices::parse_serial;
using devices::SerialSpec;

TEST(SerialSpec, ParsesEveryBackend) {
  EXPECT_EQ(parse_serial("stdio").kind, SerialSpec::Kind::kStdio);
  EXPECT_EQ(parse_serial("pty").kind, SerialSpec::Kind::kPty);
  EXPECT_EQ(parse_serial("none").kind, SerialSpec::Kind::kNone);
  auto file = parse_serial("file=/tmp/x.log");
  EXPECT_EQ(file.kind, SerialSpec::Kind::kFile);
  EXPECT_EQ(file.path, "/tmp/x.log");
  auto unix_socket = parse_serial("unix=/run/s.sock");
  EXPECT_EQ(unix_socket.kind, SerialSpec::Kind::kUnix);
  EXPECT_EQ(unix_socket.path, "/run/s.sock");
}

TEST(SerialSpec, RejectsUnknownAndEmptyPaths) {
  for (const char* bad : {"", "tcp=1234", "file=", "unix=", "stdout", "filex=/a"})
    EXPECT_THROW(parse_serial(bad), InputError) << bad;
}

}  // namespace
}  // namespace bulkhead::launcher
