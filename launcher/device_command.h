// Starting device processes from the device table, for `bulkhead run` and for `bulkhead
// device KIND`: one of Bulkhead's device processes as a standalone vhost-user back-end for
// another VMM (QEMU, crosvm, Cloud Hypervisor), the way qemu-storage-daemon or virtiofsd are
// used. The same role executable and code as inside a Bulkhead VM.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "device-procs/device_kind.h"
#include "launcher/sandbox.h"

namespace CLI {
class App;
}

namespace bulkhead::launcher {

// Starts `instance`'s confined device process, serving the core (or a front-end) over
// `connection`; `as_sibling`: as our parent's child (see SpawnOptions).
RoleProcess start_device(const devices::DeviceKind& kind, const devices::DeviceInstance& instance,
                         const VmSandbox& sandbox, int connection, bool as_sibling = false);
// Starts the helper process `instance` needs (bh-slirp for user-mode networking), if any. It
// lives as long as the VM (or the standalone device), across restarts of the device process.
std::optional<RoleProcess> start_helper(const devices::DeviceInstance& instance, const VmSandbox& sandbox);

struct DeviceOptions {
  std::string kind;                   // a standalone kind: "virtio-scsi", ...
  std::optional<std::string> socket;  // listen here, serve one front-end at a time
  std::optional<int> fd;              // or: an already-connected socket
  // The standalone options of every such kind, by name, every occurrence as typed.
  std::map<std::string, std::vector<std::string>> device_options;
  SandboxRequest sandbox;  // each device process is confined like a VM's; this listener is not
};

// Registers the standalone options of every kind that has them on `device`.
void add_standalone_options(CLI::App& device, DeviceOptions& options);

// Serves until the front-end hangs up (--fd) or a signal arrives (--socket). Throws
// InputError for bad input before anything starts.
int serve_device(const DeviceOptions& options);

}  // namespace bulkhead::launcher
