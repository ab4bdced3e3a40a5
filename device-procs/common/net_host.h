// The host end of a NIC, as the launcher sets it up for any NIC kind (virtio-net, e1000) from
// `--net`: user-mode networking (a socket pair to a bh-slirp helper), a tap that exists, or a
// new tap attached to a bridge. Launcher side: it opens and configures, the device process
// only gets descriptors.
//
//   --net user[,hostfwd=tcp:127.0.0.1:HOSTPORT-:GUESTPORT]...[,restrict=on]
//   --net tap=NAME | bridge=BRIDGE
//   and with each: [,mac=XX:XX:XX:XX:XX:XX][,queues=N][,model=...]
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "device-procs/device_kind.h"
#include "ipc/control.pb.h"

namespace bulkhead::devices {

struct NetSpec {
  enum class Kind { kUser, kTap, kBridge } kind = Kind::kUser;
  std::string interface;  // the tap's or the bridge's name
  std::vector<ipc::SlirpConfig::Forward> forwards;
  bool restrict = false;
  std::optional<std::array<uint8_t, 6>> mac;
  uint32_t queues = 1;
  std::string model;  // as given, "" if none
};

// Throws InputError naming the problem; `max_queues` 1 for a NIC without multiqueue.
NetSpec parse_net(const std::string& text, uint32_t max_queues);
// A stable, locally administered unicast address for the NIC named `nic` of the VM `vm`.
std::array<uint8_t, 6> derived_mac(const std::string& vm, const std::string& nic);
std::string format_mac(const std::array<uint8_t, 6>& mac);

// The user-mode networking helper (device-procs/slirp).
const ProcessRole& slirp_role();

// The opened host end of one NIC.
class NetHost {
 public:
  explicit NetHost(NetSpec spec) : spec_(std::move(spec)) {}
  // Opens the tap queues or the helper's socket pair; checks forwarded host ports are free.
  // Throws InputError naming the problem (no such tap or bridge, a busy port).
  void open(uint32_t queues);
  // The device process's side, its descriptors added to `fds`.
  ipc::NetBackend backend(launcher::FdList& fds) const;
  // bh-slirp, for user-mode networking.
  std::optional<HelperStart> helper(launcher::FdList& fds) const;
  const NetSpec& spec() const { return spec_; }
  uint32_t mtu() const { return mtu_; }

 private:
  NetSpec spec_;
  std::vector<UniqueFd> taps_;
  UniqueFd device_end_, helper_end_;
  uint32_t mtu_ = 1500;
};

// What every NIC model's instance shares: its host end, its MAC address (given, or derived
// from the VM's name and its own) and its bh-slirp helper.
class NicInstance : public DeviceInstance {
 public:
  NicInstance(std::string name, NetSpec spec, std::string vm_name)
      : name_(std::move(name)), host_(std::move(spec)), vm_name_(std::move(vm_name)) {}
  std::string name() const override { return name_; }
  void open(launcher::VmSandbox& sandbox) override;
  std::optional<HelperStart> helper(launcher::FdList& fds) const override { return host_.helper(fds); }

 protected:
  std::string mac_bytes() const { return std::string(mac_.begin(), mac_.end()); }
  std::string name_;
  NetHost host_;
  std::string vm_name_;
  std::array<uint8_t, 6> mac_{};
};

}  // namespace bulkhead::devices
