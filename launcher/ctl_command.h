// `bulkhead ctl`: commands to a running VM over its control socket (ipc/ctl.proto), and
// `bulkhead list`: the VMs running on this host.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace CLI {
class App;
}

namespace bulkhead::launcher {

struct CtlOptions {
  std::optional<std::string> vm;      // --vm NAME
  std::optional<std::string> socket;  // --socket PATH
  std::string state_root = "/run/bulkhead";
  bool json = false;
  std::string command;                // the subcommand's name: status, devices, stop, ...
  uint32_t timeout_s = 30;            // stop: until the hard stop
  std::string device;                 // restart-device
  std::string balloon_target;         // balloon: the memory the guest is to keep, as typed
};

// Adds `ctl` and `list` to `app`; returns them (in that order) for the caller's dispatch.
std::pair<CLI::App*, CLI::App*> add_ctl_commands(CLI::App& app, CtlOptions& options);

// Returns the exit status; throws InputError naming what is wrong.
int run_ctl(const CtlOptions& options);
int list_vms(const CtlOptions& options);

}  // namespace bulkhead::launcher
