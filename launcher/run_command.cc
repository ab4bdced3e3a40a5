#include "launcher/run_command.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "common/error.h"
#include "ipc/control.pb.h"
#include "launcher/ctl_socket.h"
#include "launcher/device_command.h"
#include "launcher/resources.h"
#include "launcher/respawner.h"
#include "launcher/sandbox.h"
#include "launcher/spawn.h"
#include "launcher/supervisor.h"
#include "vmm-core/boot/kernel_image.h"

namespace bulkhead::launcher {

namespace {

constexpr uint64_t kCoreFileAllowance = 64ull << 20;

struct CoreResources {
  UniqueFd kvm, kernel, initrd;
};

CoreResources open_core_resources(const VmPlan& plan, VmSandbox& sandbox) {
  CoreResources r;
  r.kernel = open_file(plan.kernel, O_RDONLY, "kernel");
  core::probe_kernel(r.kernel.get());
  sandbox.label_image(r.kernel.get(), true, plan.kernel);
  if (plan.initrd) {
    r.initrd = open_file(*plan.initrd, O_RDONLY, "initrd");
    core::file_size(r.initrd.get(), "initrd");
    sandbox.label_image(r.initrd.get(), true, *plan.initrd);
  }
  r.kvm = open_file("/dev/kvm", O_RDWR, "KVM device");
  return r;
}

// One device as the core will attach it: its slot, and the core's end of its socket.
struct Connection {
  ipc::DeviceSlot slot;
  UniqueFd core_side, device_side;  // device_side: for a device process
};

Connection connect_device(PlannedDevice& device) {
  Connection c;
  c.slot = device.instance->slot();
  c.slot.set_name(device.instance->name());
  if (device.kind->executable.empty()) {
    c.core_side = device.instance->take_backend_socket();
    return c;
  }
  int pair[2];
  // The socket between the core and the device process (vhost-user or legacy protocol).
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  c.core_side.reset(pair[0]);
  c.device_side.reset(pair[1]);
  return c;
}

ipc::CoreConfig core_config(const VmPlan& plan, const CoreResources& r, std::vector<Connection>& connections,
                            FdList& fds) {
  ipc::CoreConfig c;
  c.set_kvm_fd(fds.add(r.kvm.get()));
  c.set_kernel_fd(fds.add(r.kernel.get()));
  c.set_initrd_fd(fds.add(r.initrd.get()));
  c.set_memory_bytes(plan.memory);
  c.set_hugepages(plan.hugepages);
  c.set_cpus(plan.cpus);
  for (uint32_t cpu : plan.vcpu_host_cpus) c.add_vcpu_host_cpus(cpu);
  c.set_cmdline(plan.cmdline);
  c.set_device_poll_us(plan.context.poll_us.value_or(200));
  c.set_cpu_model(plan.cpu_model);
  for (Connection& conn : connections) {
    ipc::DeviceSlot* slot = c.add_devices();
    *slot = conn.slot;
    slot->set_socket_fd(fds.add(conn.core_side.get()));
  }
  return c;
}

// The core replays a virtio device's vhost-user set-up to a new process of it, and hands a
// restartable legacy device's the state page its predecessor kept its registers in; other
// legacy devices' state would be lost with their process.
bool restartable(const PlannedDevice& device) {
  ipc::DeviceSlot slot = device.instance->slot();
  return !device.kind->executable.empty() && (slot.has_virtio() || slot.legacy().restartable());
}

}  // namespace

int run_vm(const RunOptions& options) {
  // The plan: every option checked, every device planned from the table.
  VmPlan plan = plan_vm(options);

  // Host resources, opened and labelled. Nothing runs yet but bh-respawn, which ends with
  // its Respawner, so bad input leaves nothing.
  VmSandbox sandbox = VmSandbox::prepare(options.sandbox, limits_for(plan.memory, plan.cpus));
  // Sockets made from here on (a console's, those to third-party back-ends, every socket
  // between the VM's processes, their control sockets) carry the VM's label.
  std::optional<SvirtLabels::SocketLabelScope> socket_label;
  if (sandbox.labels()) socket_label.emplace(sandbox.labels()->socket_context());
  for (PlannedDevice& device : plan.devices) device.instance->open(sandbox);
  // bh-respawn forks now: it needs what the devices opened, and must hold nothing else.
  std::optional<Respawner> respawner;
  if (std::any_of(plan.devices.begin(), plan.devices.end(), restartable)) respawner.emplace(Respawner::start(plan, sandbox));
  std::optional<CtlListener> ctl;  // `bulkhead ctl`, served by the supervisor
  if (sandbox.identity()) {
    std::optional<SvirtLabels::SocketLabelScope> ctl_label;  // its own type; the VM's again after it
    if (sandbox.labels()) ctl_label.emplace(sandbox.labels()->control_socket_context());
    ctl = CtlListener::create(sandbox.identity()->state_dir(), ::getuid());
  }
  CoreResources core = open_core_resources(plan, sandbox);
  std::vector<Connection> connections;
  for (PlannedDevice& device : plan.devices) connections.push_back(connect_device(device));
  sigset_t old_mask;
  UniqueFd signals = block_termination_signals(&old_mask);

  // The VM's processes: each device, then the core that attaches them.
  sandbox.announce();
  std::vector<SupervisedDevice> devices;
  for (size_t i = 0; i < plan.devices.size(); ++i) {
    if (!connections[i].device_side) continue;
    const PlannedDevice& planned = plan.devices[i];
    devices.push_back({start_device(*planned.kind, *planned.instance, sandbox, connections[i].device_side.get()),
                       static_cast<uint32_t>(i), connections[i].slot.name(), restartable(planned)});
    connections[i].device_side.reset();  // the device holds its own copy now
  }
  std::vector<RoleProcess> helpers;
  for (PlannedDevice& device : plan.devices)
    if (std::optional<RoleProcess> helper = start_helper(*device.instance, sandbox)) helpers.push_back(std::move(*helper));
  RoleProcess core_process = spawn_role(executable_dir() + "/bulkhead-core", "bh-core", sandbox.spawn_options("bulkhead_core_t"));
  {
    ipc::StartRole start;
    FdList fds;
    // Guest RAM is one memfd the core sizes; rings and inflight areas are small ones.
    *start.mutable_confinement() = sandbox.confinement("core", {plan.memory + kCoreFileAllowance, 4096});
    *start.mutable_core() = core_config(plan, core, connections, fds);
    core_process.control->send(start, fds.all());
  }
  // The children hold their own copies of what they were given.
  core = {};
  connections.clear();
  socket_label.reset();

  // From here on the launcher only supervises; it keeps no more than that needs.
  std::vector<int> removable;
  for (const PlannedDevice& device : plan.devices)
    for (int dir : device.instance->removable_dirs()) removable.push_back(dir);
  SupervisedVm vm{sandbox.identity() ? sandbox.identity()->name() : "", std::move(core_process), std::move(devices),
                  std::move(helpers), std::move(respawner), plan.restarts, std::move(ctl)};
  sandbox.confine_launcher(removable);
  Supervisor supervisor(std::move(vm), std::move(signals));
  int status = supervisor.run();
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return status;
}

}  // namespace bulkhead::launcher
