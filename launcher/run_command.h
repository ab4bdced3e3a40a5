// `bulkhead run`: opens everything a VM needs, starts its processes, supervises them and
// returns the exit status the launcher should exit with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "launcher/options.h"
#include "launcher/sandbox.h"

namespace bulkhead::launcher {

struct RunOptions {
  std::optional<std::string> kernel;  // none: the built-in test guest
  std::optional<std::string> initrd;
  std::string cmdline;
  std::string memory = "256M";
  uint32_t cpus = 1;
  std::string cpu = "baseline";          // CPU model: baseline or host
  std::string serial = "stdio";
  uint32_t device_poll_us = 200;
  std::vector<std::string> disks;        // PATH[,ro]: LUNs of one virtio-scsi device process
  std::vector<std::string> vhost_user;   // type=scsi|blk|net,socket=PATH: a third-party back-end
  SandboxRequest sandbox;
};

struct VhostUserSpec {
  std::string type;  // scsi, blk, net
  std::string socket;
};
// Parses "type=scsi|blk|net,socket=PATH"; throws InputError naming the problem.
VhostUserSpec parse_vhost_user(const std::string& text);

// Exit statuses besides the guest's own.
inline constexpr int kExitVmmError = 1;
inline constexpr int kExitUsage = 2;

// Throws InputError for bad input (before any process starts).
int run_vm(const RunOptions& options);

}  // namespace bulkhead::launcher
