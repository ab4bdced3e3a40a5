// The device table (device_table.cc): every kind of device a Bulkhead VM can have, one
// entry each. An entry says everything the rest of Bulkhead needs to know about its kind:
//  - its name, its process (executable, process name), its seccomp policy (policy/<policy>.policy)
//    and its SELinux domain (selinux/bulkhead.te);
//  - the options of `bulkhead run` (and `bulkhead device`) it takes, how they are parsed and
//    checked, and what it opens on the host and hands to its process;
//  - how the core attaches it (an ipc::DeviceSlot: a virtio-pci function over vhost-user, or a
//    legacy device with windows, a PCI function, IRQ lines and DMA) and what ACPI says of it.
// The launcher, `bulkhead device`, the supervisor, the core (through the slots), the ACPI
// tables, the seccomp report, `bulkhead devices` (and so docs/devices.md) and the tests read it.
// Adding a device is its folder (device-procs/<name>/ with its process and its entry),
// one line in device_table.cc, and its policy files (docs/adding-a-device.md).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"
#include "ipc/control.pb.h"
#include "launcher/sandbox.h"
#include "launcher/spawn.h"

namespace bulkhead::devices {

// The two sets of devices a VM can have: virtio ("paravirtualized") or emulated hardware that
// guests without virtio drivers know ("full virtualization").
enum class Mode { kParavirt, kFull };

// An option a kind takes from the command line, as `--name VALUE`.
struct OptionSpec {
  std::string name;        // "--disk"
  std::string value_help;  // "PATH[,ro]"
  std::string help;
  // Kinds may share an option: an occurrence with `key=value` goes to the kind whose
  // selector it is ("bus=scsi"); one without goes to the kind whose `default_in` is the VM's
  // mode (or to the one kind that has the option at all).
  std::string selector;
  std::optional<Mode> default_in;
  bool repeatable = true;
  std::string default_value;  // used when the option is absent (e.g. --serial stdio); "" if none
};

// What a device's plan may depend on besides its own options.
struct VmContext {
  Mode mode = Mode::kParavirt;
  uint32_t cpus = 1;
  // How long device processes keep polling (--device-poll-us); unset, each kind picks what
  // measured best for it (disks 200 µs; NICs 0, see the README's benchmarks).
  std::optional<uint32_t> poll_us;
  std::string vm_name;     // may be empty (the launcher picks one later)
  uint64_t memory_bytes = 64ull << 20;  // guest RAM
  uint64_t memory_page_size = 4096;     // of its backing: 2 MiB with --memory ...,hugepages=on
};

// One confined process of a VM besides the core: its executable (beside the launcher), process
// name, seccomp policy (policy/<policy>.policy), SELinux domain, and whether it works in the
// host's network namespace (only the user-mode networking helper, bh-slirp, does).
struct ProcessRole {
  std::string executable, process_name, policy, selinux_type;
  bool host_network = false;
};

// How to start one helper: its configuration (descriptors in the FdList it was built with),
// its limits, and files its otherwise empty root holds.
struct HelperStart {
  const ProcessRole* role = nullptr;
  ipc::DeviceConfig config;
  launcher::RoleLimits limits{};
  std::vector<std::pair<std::string, std::string>> root_files;  // path, content
};

// One device of a VM: a device process, or a third party's back-end.
class DeviceInstance {
 public:
  virtual ~DeviceInstance() = default;
  virtual std::string name() const = 0;  // for messages: "serial0", "virtio-scsi0"
  // Opens and labels what it needs on the host; throws InputError naming the problem. Runs
  // after every instance was planned, before any process starts.
  virtual void open(launcher::VmSandbox& sandbox) = 0;
  // A device process's configuration (its descriptors added to `fds`; the launcher sets the
  // core socket) and what its confinement lets it grow and hold.
  virtual ipc::DeviceConfig config(launcher::FdList& fds) const = 0;
  virtual launcher::RoleLimits limits() const = 0;
  // How the core attaches it; the launcher fills in the socket.
  virtual ipc::DeviceSlot slot() const = 0;
  // A third party's back-end has no process: the socket to it, already connected.
  virtual UniqueFd take_backend_socket() { return {}; }
  // A helper process it needs (started after its own process), or nothing.
  virtual std::optional<HelperStart> helper(launcher::FdList& /*fds*/) const { return std::nullopt; }
  // Once the VM runs: directories (held open) in which the launcher removes something at
  // the end, such as a console socket.
  virtual std::vector<int> removable_dirs() const { return {}; }
};

using OptionValues = std::vector<std::string>;  // every occurrence, as typed

class DeviceKind {
 public:
  virtual ~DeviceKind() = default;

  std::string name;          // "serial"
  std::string executable;    // "bulkhead-serial" beside the launcher; "" for a third party's back-end
  std::string process_name;  // "bh-serial"
  std::string policy;        // its seccomp policy: policy/<policy>.policy
  std::string selinux_type;  // its SELinux domain, e.g. "bulkhead_serial_t"
  std::string summary;       // what it is and how the core attaches it, for `bulkhead devices`
  // Arguments of `bulkhead run` that give a VM one such device; "{dir}" stands for a scratch
  // directory (tests and documentation use them).
  std::vector<std::string> example;
  // Helper processes its devices may need (confined like every role; the tests check them).
  std::vector<const ProcessRole*> helper_roles;

  virtual std::vector<OptionSpec> options() const = 0;
  // The VM's instances of this kind: `values[i]` holds the occurrences of options()[i]
  // routed to this kind, as typed (a default value counts as one). Throws InputError.
  virtual std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                            const VmContext& vm) const = 0;

  // `bulkhead device NAME`: kinds that can serve other VMMs as a standalone vhost-user
  // back-end take these options, and plan one instance from them (`values` as for plan()).
  virtual std::vector<OptionSpec> standalone_options() const { return {}; }
  virtual std::unique_ptr<DeviceInstance> plan_standalone(const std::vector<OptionValues>& /*values*/) const {
    return nullptr;
  }
  bool standalone() const { return !standalone_options().empty(); }
};

// The table, in the order the core attaches devices (and so assigns PCI slots).
const std::vector<const DeviceKind*>& device_table();
const DeviceKind* find_kind(std::string_view name);
// Every process role the table's kinds may start (their own and their helpers), once each.
std::vector<ProcessRole> process_roles();

// Helpers for entries: an option value's "key=value" items after the first (which is often
// a path), and a check that only known keys appear.
struct OptionItems {
  std::string first;                                         // before the first comma
  std::vector<std::pair<std::string, std::string>> items;  // key=value (or key, value "")
  std::optional<std::string> get(const std::string& key) const;
};
// Throws InputError naming `option`, `text` and the known keys for an unknown one.
OptionItems parse_option_items(const std::string& option, const std::string& text,
                               const std::vector<std::string>& known_keys);

}  // namespace bulkhead::devices
