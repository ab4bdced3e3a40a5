#include "launcher/device_command.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "ipc/control.pb.h"
#include "launcher/disk_spec.h"
#include "launcher/resources.h"
#include "launcher/sandbox.h"
#include "launcher/spawn.h"

namespace bulkhead::launcher {

namespace {

constexpr uint32_t kMaxQueues = 64;

// Waits for `device` to exit or a termination signal; returns the signal number or 0.
int wait_device(RoleProcess& device, int signals) {
  for (;;) {
    pollfd fds[2] = {{device.pidfd.get(), POLLIN, 0}, {signals, POLLIN, 0}};
    // poll() over a pidfd and a signalfd we own.
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) throw_errno("poll");
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      // One record from our signalfd.
      if (::read(signals, &info, sizeof info) == sizeof info) {
        ::kill(device.pid, SIGKILL);  // pid 1 of its namespace: SIGTERM would be ignored
        while (!try_reap(device)) ::poll(fds, 1, 1000);
        return static_cast<int>(info.ssi_signo);
      }
    }
    if ((fds[0].revents & POLLIN) && try_reap(device)) return 0;
  }
}

}  // namespace

RoleProcess start_virtio_scsi(const VmSandbox& sandbox, const std::vector<DiskImage>& disks, uint32_t queues,
                              uint32_t poll_us, int connection) {
  RoleProcess device =
      spawn_role(executable_dir() + "/bulkhead-virtio-scsi", "bh-virtio-scsi", sandbox.spawn_options("virtio-scsi"));
  ipc::StartRole start;
  FdList fds;
  // It writes within its images and sizes small inflight memory files.
  uint64_t largest = 64ull << 20;
  for (const DiskImage& d : disks) largest = std::max(largest, d.size);
  *start.mutable_confinement() = sandbox.confinement("virtio-scsi", {largest, 1024});
  ipc::DeviceConfig* config = start.mutable_device();
  config->set_core_socket_fd(fds.add(connection));
  ipc::VirtioScsiConfig* scsi = config->mutable_virtio_scsi();
  scsi->set_request_queues(queues);
  scsi->set_poll_us(poll_us);
  for (size_t i = 0; i < disks.size(); ++i) {
    ipc::VirtioScsiDisk* d = scsi->add_disks();
    d->set_fd(fds.add(disks[i].fd.get()));
    d->set_read_only(disks[i].read_only);
    d->set_serial("BH" + std::to_string(i));
  }
  device.control->send(start, fds.all());
  return device;
}

int serve_device(const DeviceOptions& options) {
  if (options.kind != "virtio-scsi") throw InputError("unknown device kind '" + options.kind + "' (known: virtio-scsi)");
  if (options.socket.has_value() == options.fd.has_value()) throw InputError("give exactly one of --socket PATH and --fd N");
  if (options.disks.empty()) throw InputError("virtio-scsi needs at least one --disk");
  if (options.queues == 0 || options.queues > kMaxQueues)
    throw InputError("--queues must be between 1 and " + std::to_string(kMaxQueues));
  std::vector<DiskImage> disks;
  for (const std::string& spec : options.disks) disks.push_back(open_disk(spec));
  // Memory for the device's own structures; the front-end's guest RAM is charged to it.
  VmSandbox sandbox = VmSandbox::prepare(options.sandbox, {256ull << 20, 256, 100000, 100000});
  for (DiskImage& disk : disks) sandbox.label_image(disk.fd.get(), disk.read_only, disk.path);

  UnixListener listener;
  UniqueFd connection;
  if (options.socket) {
    listener = listen_unix(*options.socket);
    std::fprintf(stderr, "bulkhead: virtio-scsi listening on %s\n", options.socket->c_str());
  } else {
    int type = 0;
    socklen_t len = sizeof type;
    // getsockopt on the descriptor the caller named, to check it is a stream socket.
    if (*options.fd < 0 || ::getsockopt(*options.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      throw InputError("--fd " + std::to_string(*options.fd) + " is not a connected stream socket");
    connection = duplicate(*options.fd, "the --fd socket");
    ::close(*options.fd);
  }
  sandbox.announce();
  sigset_t old_mask;
  UniqueFd signals = block_termination_signals(&old_mask);
  int stopped_by = 0;
  for (;;) {
    if (listener.fd) {
      pollfd fds[2] = {{listener.fd.get(), POLLIN, 0}, {signals.get(), POLLIN, 0}};
      // Waits for a front-end or a termination signal.
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) throw_errno("poll");
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info;
        // One record from our signalfd.
        if (::read(signals.get(), &info, sizeof info) == sizeof info) stopped_by = static_cast<int>(info.ssi_signo);
        break;
      }
      // accept4 on our listening socket; the connection goes to the device process.
      connection.reset(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!connection) continue;
    }
    RoleProcess device = start_virtio_scsi(sandbox, disks, options.queues, options.poll_us, connection.get());
    connection.reset();
    stopped_by = wait_device(device, signals.get());
    if (stopped_by || !listener.fd) break;
    std::fprintf(stderr, "bulkhead: front-end disconnected; waiting for the next one\n");
  }
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return stopped_by ? 128 + stopped_by : 0;
}

}  // namespace bulkhead::launcher
