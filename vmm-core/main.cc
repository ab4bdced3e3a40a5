// bh-core: owns /dev/kvm and guest RAM; runs the vCPUs and forwards legacy device accesses.
#include <cstdio>

#include "common/error.h"
#include "common/log.h"
#include "ipc/control.pb.h"
#include "ipc/control_channel.h"
#include "policy/confine.h"
#include "vmm-core/vm.h"

using namespace bulkhead;

int main() {
  init_process("bh-core");
  ipc::ControlChannel control{UniqueFd(ipc::kControlFd)};
  ipc::RoleEvent event;
  try {
    ipc::StartRole start;
    std::vector<UniqueFd> fds;
    if (!control.receive(start, fds) || !start.has_core()) throw InputError("no core configuration received");
    // Before the core talks to any device process (they are peers, not trusted).
    policy::confine(start.confinement(), "core", "bh-core");
    ipc::VmStopped stopped;
    {
      core::Vm vm(start.core(), fds);
      ipc::RoleEvent ready;
      ready.set_ready(true);
      control.send(ready);
      stopped = vm.run(control);
    }
    *event.mutable_vm_stopped() = stopped;
  } catch (const InputError& e) {
    event.mutable_vm_stopped()->set_reason(ipc::VmStopped::CONFIG_ERROR);
    event.mutable_vm_stopped()->set_message(e.what());
  } catch (const std::exception& e) {
    event.mutable_vm_stopped()->set_reason(ipc::VmStopped::VMM_ERROR);
    event.mutable_vm_stopped()->set_message(e.what());
  }
  try {
    control.send(event);
  } catch (const std::exception& e) {
    spdlog::error("cannot report to the launcher: {}", e.what());
    return 1;
  }
  return 0;
}
