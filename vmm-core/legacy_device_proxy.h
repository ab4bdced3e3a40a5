// The core's end of a legacy device process: the vhost-user-style handshake, the irqfds it
// drives, and bus windows whose accesses travel over the shared access ring.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "ipc/legacy_device/access_ring.h"
#include "ipc/legacy_device/protocol.h"
#include "vhost-user/connection.h"
#include "vmm-core/bus.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class LegacyDeviceProxy {
 public:
  // Runs the handshake; throws naming the device if it misbehaves. Each entry of `gsis`
  // becomes an irqfd for the device's interrupt line of the same index.
  LegacyDeviceProxy(std::string name, UniqueFd socket, legacy::DeviceKind expected_kind, int vm_fd,
                    const std::vector<uint32_t>& gsis, uint32_t poll_us, VmControl& vm);

  const std::string& name() const { return name_; }
  int socket_fd() const { return connection_.fd(); }
  const legacy::DeviceInfo& info() const { return info_; }
  // A bus device for register window `region`; accesses past the window's size are refused.
  std::shared_ptr<BusDevice> region(uint8_t region);

 private:
  std::string name_;
  vhost_user::Connection connection_;
  legacy::DeviceInfo info_{};
  std::vector<UniqueFd> irqfds_;
  std::shared_ptr<legacy::AccessRingProducer> ring_;
  VmControl& vm_;
};

}  // namespace bulkhead::core
