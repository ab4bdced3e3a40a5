// `bulkhead device KIND`: one of Bulkhead's device processes as a standalone vhost-user
// back-end for another VMM (QEMU, crosvm, Cloud Hypervisor), the way qemu-storage-daemon or
// virtiofsd are used. The same role executable and code as inside a Bulkhead VM.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "launcher/disk_spec.h"
#include "launcher/sandbox.h"

namespace bulkhead::launcher {

struct DeviceOptions {
  std::string kind;                  // "virtio-scsi"
  std::optional<std::string> socket; // listen here, serve one front-end at a time
  std::optional<int> fd;             // or: an already-connected socket
  std::vector<std::string> disks;    // PATH[,ro]
  uint32_t queues = 1;
  uint32_t poll_us = 200;
  SandboxRequest sandbox;  // each device process is confined like a VM's; this listener is not
};

// Starts a confined virtio-scsi device process serving `disks` (one LUN each) over the
// vhost-user socket `connection`: for `bulkhead device` and for `bulkhead run --disk` alike.
RoleProcess start_virtio_scsi(const VmSandbox& sandbox, const std::vector<DiskImage>& disks, uint32_t queues,
                              uint32_t poll_us, int connection);

// Serves until the front-end hangs up (--fd) or a signal arrives (--socket). Throws
// InputError for bad input before anything starts.
int serve_device(const DeviceOptions& options);

}  // namespace bulkhead::launcher
