// A VM as `bulkhead run` will start it, planned from the command line and the device table
// (device-procs/device_kind.h) before anything is opened: bad input fails here with nothing
// left behind.
#pragma once

#include <sched.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "device-procs/device_kind.h"
#include "ipc/control.pb.h"
#include "launcher/sandbox.h"

namespace CLI {
class App;
}

namespace bulkhead::launcher {

struct RunOptions {
  std::optional<std::string> kernel;  // none: the built-in test guest
  std::optional<std::string> initrd;
  std::string cmdline;
  std::string memory = "256M";
  uint32_t cpus = 1;
  std::string cpu = "baseline";  // CPU model: baseline or host
  std::string mode = "paravirt";
  std::optional<uint32_t> device_poll_us;  // unset: each device kind's own default
  std::string device_restarts = "5/60";    // COUNT/SECONDS
  std::optional<std::string> vcpu_pin;     // CPU,CPU,...: one host CPU per vCPU
  // The device table's options (--serial, --disk, ...), by name, every occurrence as typed.
  std::map<std::string, std::vector<std::string>> device_options;
  SandboxRequest sandbox;
};

struct PlannedDevice {
  const devices::DeviceKind* kind;
  std::unique_ptr<devices::DeviceInstance> instance;
};

// How often the supervisor restarts a crashed device process before it leaves it down.
struct RestartPolicy {
  uint32_t max_restarts = 5;
  std::chrono::seconds window{60};
};

struct VmPlan {
  uint64_t memory = 0;
  bool hugepages = false;  // guest RAM in 2 MiB pages from the hugetlb pool
  uint32_t cpus = 1;
  std::vector<uint32_t> vcpu_host_cpus;  // empty: the vCPU threads may run anywhere
  std::string kernel;
  std::optional<std::string> initrd;
  std::string cmdline;
  ipc::CoreConfig::CpuModel cpu_model = ipc::CoreConfig::BASELINE;
  devices::VmContext context;
  RestartPolicy restarts;
  std::vector<PlannedDevice> devices;  // in table order: the order the core attaches them
};

// Registers every option of the device table on `run` (an option several kinds share once),
// its values going to `values`.
void add_device_options(CLI::App& run, std::map<std::string, std::vector<std::string>>& values);

// --device-restarts COUNT/SECONDS; throws InputError naming the problem.
RestartPolicy parse_restart_policy(const std::string& text);
// --vcpu-pin: one host CPU per vCPU, each one this process may run on (`allowed`).
std::vector<uint32_t> parse_vcpu_pin(const std::string& text, uint32_t cpus, const cpu_set_t& allowed);

// Throws InputError naming the problem.
VmPlan plan_vm(const RunOptions& options);

// Which kind each occurrence of a table option belongs to (by selector, or the VM's mode),
// with defaults for absent options: for each kind, `values[i]` for its options()[i].
std::map<const devices::DeviceKind*, std::vector<devices::OptionValues>> route_device_options(
    const std::map<std::string, std::vector<std::string>>& given, devices::Mode mode,
    const std::vector<const devices::DeviceKind*>& table = devices::device_table());

// The seccomp policy names of every role (the core, the supervisor, each device kind):
// what --selftest ROLE:... may name.
std::vector<std::string> role_policies();

// Exit statuses besides the guest's own.
inline constexpr int kExitVmmError = 1;
inline constexpr int kExitUsage = 2;

}  // namespace bulkhead::launcher
