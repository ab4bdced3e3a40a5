// Who a VM is on the host: its name, state directory, dedicated uid/gid and SELinux category
// pair. Identities of running VMs are found again from their state directories (a launcher
// that restarts, or a second launcher, never hands out a uid or pair that is in use), and
// released when the VM ends.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::launcher {

// Uids/gids Bulkhead allocates for VMs: far above the ranges distributions and sub-uid
// maps use.
inline constexpr uint32_t kFirstVmUid = 1'900'000'000;
inline constexpr uint32_t kVmUidCount = 65536;
inline constexpr const char* kDefaultStateRoot = "/run/bulkhead";

struct IdentityRequest {
  std::optional<std::string> name;       // default: vm<launcher pid>
  std::optional<std::string> state_dir;  // default: /run/bulkhead/<name>
  std::optional<uint32_t> uid, gid;      // default: allocated
  // Picks the VM's SELinux category pair given those in use (called under the allocation
  // lock); unset: no pair.
  std::function<std::string(const std::vector<std::string>& reserved)> choose_mcs;
};

class VmIdentity {
 public:
  // Creates the state directory (0700), reserving a uid (and a category pair). Throws
  // InputError if the name is invalid or in use by a running VM; a stale directory of a VM
  // that is gone is replaced.
  static VmIdentity create(const IdentityRequest& request);
  ~VmIdentity();  // removes the state directory
  VmIdentity(VmIdentity&& other) noexcept;
  VmIdentity& operator=(VmIdentity&&) = delete;

  const std::string& name() const { return name_; }
  const std::string& state_dir() const { return state_dir_; }
  uint32_t uid() const { return uid_; }
  uint32_t gid() const { return gid_; }
  const std::string& mcs() const { return mcs_; }
  // Every uid and category pair reserved by a running VM whose state directory is in `root`.
  static std::vector<uint32_t> reserved_uids(const std::string& root);
  static std::vector<std::string> reserved_mcs(const std::string& root);
  // Held open so the directory can be removed (and relabelled) after the launcher confined
  // itself to an empty root.
  int root_fd() const { return root_fd_.get(); }
  int dir_fd() const { return dir_fd_.get(); }

 private:
  VmIdentity() = default;
  std::string name_, state_dir_, leaf_, mcs_;
  uint32_t uid_ = 0, gid_ = 0;
  UniqueFd root_fd_, dir_fd_;
};

}  // namespace bulkhead::launcher
