// The supervisor: the launcher once a VM's processes run. It reaps them, forwards
// termination signals, reports how the VM ended and turns that into the exit status.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ipc/control.pb.h"
#include "launcher/spawn.h"

namespace bulkhead::launcher {

class Supervisor {
 public:
  // `helpers` (bh-slirp) serve devices: they stop once the devices have.
  Supervisor(RoleProcess core, std::vector<RoleProcess> devices, std::vector<RoleProcess> helpers, UniqueFd signals)
      : core_(std::move(core)), devices_(std::move(devices)), helpers_(std::move(helpers)), signals_(std::move(signals)) {}

  // Returns the launcher's exit status (see the README's table).
  int run();

 private:
  bool on_core_message();
  void kill_all();
  void wait_for_devices();

  RoleProcess core_;
  std::vector<RoleProcess> devices_, helpers_;
  UniqueFd signals_;
  std::optional<ipc::VmStopped> stopped_;
  std::string device_failure_;
  int interrupted_by_ = 0;
};

}  // namespace bulkhead::launcher
