#include "launcher/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "launcher/vm_plan.h"

namespace bulkhead::launcher {

namespace {
constexpr auto kDeviceExitGrace = std::chrono::seconds(5);
}  // namespace


bool Supervisor::on_core_message() {
  ipc::RoleEvent event;
  std::vector<UniqueFd> fds;
  try {
    if (!core_.control->receive(event, fds)) return false;
  } catch (const std::exception& e) {
    spdlog::warn("bad message from the core: {}", e.what());
    return false;
  }
  if (event.has_vm_stopped()) stopped_ = event.vm_stopped();
  return true;
}

void Supervisor::kill_all() {
  // Roles run as pid 1 of their own pid namespace, where SIGTERM without a handler is
  // ignored; SIGKILL always ends them.
  if (!core_.reaped) ::kill(core_.pid, SIGKILL);
  for (auto* roles : {&devices_, &helpers_})
    for (auto& r : *roles)
      if (!r.reaped) ::kill(r.pid, SIGKILL);
}

void Supervisor::wait_for_devices() {
  // Devices finish on their own once the core is gone (flushing guest output first).
  auto deadline = std::chrono::steady_clock::now() + kDeviceExitGrace;
  for (auto& d : devices_) {
    while (!try_reap(d)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(d.pid, SIGKILL);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        continue;
      }
      pollfd p{d.pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
  }
}

int Supervisor::run() {
  while (!try_reap(core_)) {
    std::vector<pollfd> fds = {{signals_.get(), POLLIN, 0}, {core_.pidfd.get(), POLLIN, 0},
                               {core_.control->fd(), POLLIN, 0}};
    for (auto& d : devices_) fds.push_back({d.pidfd.get(), d.reaped ? short{0} : short{POLLIN}, 0});
    for (auto& h : helpers_) fds.push_back({h.pidfd.get(), h.reaped ? short{0} : short{POLLIN}, 0});
    // poll() over descriptors this supervisor owns.
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) throw_errno("poll");
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      // One siginfo record from our signalfd.
      if (::read(signals_.get(), &info, sizeof info) == sizeof info && !interrupted_by_) {
        interrupted_by_ = static_cast<int>(info.ssi_signo);
        kill_all();
      }
    }
    if (fds[2].revents & POLLIN) on_core_message();
    for (size_t i = 0; i < devices_.size(); ++i) {
      if ((fds[3 + i].revents & POLLIN) && try_reap(devices_[i]) && device_failure_.empty() && !interrupted_by_) {
        device_failure_ = devices_[i].role + " " + describe_exit(devices_[i]);
      }
    }
    for (size_t i = 0; i < helpers_.size(); ++i) {
      // The guest keeps running; what the helper served (its NIC's host network) is gone.
      if ((fds[3 + devices_.size() + i].revents & POLLIN) && try_reap(helpers_[i]) && !interrupted_by_)
        fprintf(stderr, "bulkhead: warning: %s %s; its NIC is cut off from the host's network\n",
                helpers_[i].role.c_str(), describe_exit(helpers_[i]).c_str());
    }
  }
  // The core's last report may still sit in the socket after it exited.
  for (;;) {
    pollfd p{core_.control->fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN) || !on_core_message()) break;
  }
  wait_for_devices();
  for (auto& h : helpers_) stop_role(h);

  if (interrupted_by_) {
    fprintf(stderr, "bulkhead: stopped by signal %d (%s)\n", interrupted_by_, strsignal(interrupted_by_));
    return 128 + interrupted_by_;
  }
  if (!stopped_) {
    std::string why = "bh-core " + describe_exit(core_);
    if (!device_failure_.empty()) why += " after " + device_failure_;
    fprintf(stderr, "bulkhead: error: the VM failed: %s\n", why.c_str());
    return kExitVmmError;
  }
  switch (stopped_->reason()) {
    case ipc::VmStopped::GUEST_EXIT:
      return static_cast<int>(stopped_->exit_code());
    case ipc::VmStopped::GUEST_RESET:
    case ipc::VmStopped::GUEST_POWEROFF:
      fprintf(stderr, "bulkhead: %s\n", stopped_->message().c_str());
      return 0;
    case ipc::VmStopped::CONFIG_ERROR:
      fprintf(stderr, "bulkhead: error: %s\n", stopped_->message().c_str());
      return kExitUsage;
    default: {
      std::string why = stopped_->message();
      if (!device_failure_.empty()) why += " (" + device_failure_ + ")";
      fprintf(stderr, "bulkhead: error: the VM failed: %s\n", why.c_str());
      return kExitVmmError;
    }
  }
}

}  // namespace bulkhead::launcher
