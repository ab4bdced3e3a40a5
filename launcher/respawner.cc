#include "launcher/respawner.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"
#include "ipc/control.pb.h"
#include "launcher/device_command.h"

namespace bulkhead::launcher {

namespace {

ipc::RespawnReply respawn_device(const VmPlan& plan, const VmSandbox& sandbox, uint32_t index, FdList& fds,
                                 RoleProcess& device, UniqueFd& core_side) {
  if (index >= plan.devices.size() || plan.devices[index].kind->executable.empty())
    throw InputError("no device process " + std::to_string(index) + " in this VM");
  const PlannedDevice& planned = plan.devices[index];
  int pair[2];
  // The new socket between the core and the device process, as run_vm makes the first.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  core_side.reset(pair[0]);
  UniqueFd device_side(pair[1]);
  device = start_device(*planned.kind, *planned.instance, sandbox, device_side.get(), true);
  ipc::RespawnReply reply;
  reply.set_pid(device.pid);
  reply.set_pidfd_fd(fds.add(device.pidfd.get()));
  reply.set_core_socket_fd(fds.add(core_side.get()));
  reply.set_control_fd(fds.add(device.control->fd()));
  return reply;
}

// The fork's whole life: it never returns into the launcher's code (whose destructors would
// release the VM's identity and cgroup), and it ends with the supervisor.
[[noreturn]] void serve_respawns(const VmPlan& plan, const VmSandbox& sandbox, ipc::ControlChannel& channel) {
  for (;;) {
    ipc::RespawnRequest request;
    std::vector<UniqueFd> unused;
    try {
      if (!channel.receive(request, unused)) ::_exit(0);
    } catch (const std::exception&) {
      ::_exit(1);
    }
    FdList fds;
    RoleProcess device;
    UniqueFd core_side;
    ipc::RespawnReply reply;
    try {
      reply = respawn_device(plan, sandbox, request.device(), fds, device, core_side);
    } catch (const std::exception& e) {
      reply.Clear();
      reply.set_error(e.what());
      fds = {};
    }
    try {
      channel.send(reply, fds.all());
    } catch (const std::exception&) {
      ::_exit(1);
    }
  }
}

}  // namespace

Respawner Respawner::start(const VmPlan& plan, const VmSandbox& sandbox) {
  int pair[2];
  // The request channel between the supervisor and bh-respawn.
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  UniqueFd ours(pair[0]), theirs(pair[1]);
  pid_t parent = ::getpid();
  // fork, not clone3 into an executable: the child keeps our memory (the plan and the
  // descriptors it opened) and runs only serve_respawns().
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("starting bh-respawn (fork)");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::prctl(PR_SET_NAME, "bh-respawn");
    ::setsid();  // out of the terminal's process group: Ctrl-C goes to the supervisor only
    ours.reset();
    ipc::ControlChannel channel(std::move(theirs));
    serve_respawns(plan, sandbox, channel);
  }
  Respawner r;
  r.process_.role = "bh-respawn";
  r.process_.pid = pid;
  // A pidfd for our own child, so the supervisor can poll it like the others.
  r.process_.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!r.process_.pidfd) throw_errno("pidfd_open");
  r.process_.control.emplace(std::move(ours));
  return r;
}

Respawner::~Respawner() {
  if (process_.pid > 0) stop_role(process_);
}

Respawner::Respawned Respawner::respawn(uint32_t index) {
  ipc::RespawnRequest request;
  request.set_device(index);
  process_.control->send(request);
  ipc::RespawnReply reply;
  std::vector<UniqueFd> fds;
  if (!process_.control->receive(reply, fds)) throw InputError("bh-respawn has gone");
  if (!reply.error().empty()) throw InputError(reply.error());
  Respawned r;
  r.process.pid = reply.pid();
  r.process.pidfd = ipc::take_fd(fds, reply.pidfd_fd(), "the device's pidfd");
  r.process.control.emplace(ipc::take_fd(fds, reply.control_fd(), "the device's control socket"));
  r.core_socket = ipc::take_fd(fds, reply.core_socket_fd(), "the core's socket");
  if (!r.process.pidfd || !r.core_socket) throw InputError("bh-respawn's reply lacks a descriptor");
  return r;
}

}  // namespace bulkhead::launcher
