// bh-respawn: starts a VM's crashed device processes again. The supervisor gives up its
// privileges once the VM runs (policy/supervisor.policy), and starting a confined role needs
// them: new namespaces, the VM's cgroup, an SELinux domain, the role's executable. This fork
// of the launcher keeps them and does one thing, on the supervisor's request: start device N
// of the VM's plan again, as the supervisor's own child.
#pragma once

#include <cstdint>

#include "launcher/spawn.h"
#include "launcher/vm_plan.h"

namespace bulkhead::launcher {

class Respawner {
 public:
  // Forks bh-respawn, which keeps what the plan's devices opened (images, taps, helper
  // sockets). Call it before any socket between the VM's processes exists, so that the fork
  // holds none of them and a hang-up between two processes is still seen.
  static Respawner start(const VmPlan& plan, const VmSandbox& sandbox);
  Respawner(Respawner&& other) noexcept : process_(std::move(other.process_)) { other.process_.pid = -1; }
  Respawner& operator=(Respawner&&) = delete;
  ~Respawner();  // ends bh-respawn


  struct Respawned {
    RoleProcess process;  // the supervisor's child; `control` is its control socket
    UniqueFd core_socket;  // the core's end of its vhost-user socket
  };
  // Starts device `index` of the plan again; throws with the reason if it could not.
  Respawned respawn(uint32_t index);

 private:
  Respawner() = default;
  RoleProcess process_;
};

}  // namespace bulkhead::launcher
