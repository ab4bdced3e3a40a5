// The VM's cgroup v2 group: memory, CPU and process-count limits for all its processes,
// which are started straight inside it (clone3 CLONE_INTO_CGROUP).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/unique_fd.h"

namespace bulkhead::launcher {

struct CgroupLimits {
  uint64_t memory_max;  // bytes: guest RAM plus the VMM's own overhead
  uint64_t pids_max;    // processes and threads, io_uring workers included
  uint64_t cpu_quota_us;
  uint64_t cpu_period_us;
};

// Guest RAM + 256 MiB + 1/8 for page tables, rings and buffers; vCPU threads plus room for
// device threads and kernel I/O workers; CPU time of one core per vCPU plus one.
CgroupLimits limits_for(uint64_t guest_memory, uint32_t cpus);

class VmCgroup {
 public:
  // Creates <cgroup2 root>/<parent>/bulkhead-<name> with `limits`. Returns nullopt and the
  // reason in *why when cgroup v2 or its memory, cpu and pids controllers are not available
  // or not delegated to us. `cgroup2_root` is found from /proc/self/mountinfo when empty.
  static std::optional<VmCgroup> create(const std::string& parent, const std::string& name, const CgroupLimits& limits,
                                        std::string* why, std::string cgroup2_root = "");
  ~VmCgroup();  // removes the group (every process in it has exited by then)
  VmCgroup(VmCgroup&& other) noexcept;
  VmCgroup& operator=(VmCgroup&&) = delete;

  int fd() const { return group_.get(); }  // for CLONE_INTO_CGROUP
  int parent_fd() const { return parent_.get(); }  // the confined launcher removes the group through it
  const std::string& path() const { return path_; }

 private:
  VmCgroup() = default;
  std::string path_, leaf_;
  UniqueFd parent_, group_;
};

// Where the unified (v2) hierarchy is mounted, or "".
std::string find_cgroup2_root();

}  // namespace bulkhead::launcher
