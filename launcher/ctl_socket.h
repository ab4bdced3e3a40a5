// Both ends of a VM's control socket (ipc/ctl.proto): the listener the supervisor serves in
// the VM's state directory, and how `bulkhead ctl` finds and connects to one.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/unique_fd.h"
#include "ipc/control_channel.h"

namespace bulkhead::launcher {

inline constexpr const char* kControlSocketName = "control.sock";

class CtlListener {
 public:
  // Binds <state_dir>/control.sock, mode 0600, for clients running as `owner` or root.
  static CtlListener create(const std::string& state_dir, uid_t owner);
  int fd() const { return fd_.get(); }
  // The next client, or nothing if it is not allowed (its uid is logged) or gone already.
  std::optional<ipc::ControlChannel> accept();

 private:
  UniqueFd fd_;
  uid_t owner_ = 0;
};

// The control socket of VM `name` under `state_root`, or at `path` itself.
std::string control_socket_path(const std::string& state_root, const std::string& name);
// Connects to a control socket after checking that it belongs to us or to root; throws
// InputError naming the problem (no such VM, not a socket, someone else's).
ipc::ControlChannel connect_control_socket(const std::string& path);

}  // namespace bulkhead::launcher
