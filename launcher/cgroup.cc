#include "launcher/cgroup.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "common/error.h"

namespace bulkhead::launcher {

namespace {

bool write_file(int dir, const char* file, const std::string& value) {
  // Writes a cgroup control file relative to a group directory we hold open.
  int fd = ::openat(dir, file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
  ::close(fd);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool has_all(const std::string& list, std::initializer_list<const char*> wanted) {
  std::istringstream in(list);
  std::string word, all = " ";
  while (in >> word) all += word + " ";
  for (const char* w : wanted)
    if (all.find(std::string(" ") + w + " ") == std::string::npos) return false;
  return true;
}

}  // namespace

CgroupLimits limits_for(uint64_t guest_memory, uint32_t cpus) {
  return {guest_memory + (256ull << 20) + guest_memory / 8, 256 + 4ull * cpus, 100000ull * (cpus + 1), 100000};
}

std::string find_cgroup2_root() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    // "... mount-point options - fstype source super-options"
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line);
    std::string id, parent, dev, root, mount_point;
    fields >> id >> parent >> dev >> root >> mount_point;
    return mount_point;
  }
  return "";
}

std::optional<VmCgroup> VmCgroup::create(const std::string& parent, const std::string& name, const CgroupLimits& limits,
                                         std::string* why, std::string root) {
  if (root.empty()) root = find_cgroup2_root();
  if (root.empty()) {
    *why = "cgroup v2 is not mounted";
    return std::nullopt;
  }
  if (!has_all(read_file(root + "/cgroup.controllers"), {"memory", "cpu", "pids"})) {
    *why = "cgroup v2 at " + root + " has no memory, cpu and pids controllers (a hybrid host binds them to cgroup v1)";
    return std::nullopt;
  }
  // From the root down to the parent: each level exists and hands the controllers down.
  std::string path = root;
  std::istringstream components(parent);
  std::vector<std::string> levels = {""};
  for (std::string c; std::getline(components, c, '/');)
    if (!c.empty()) levels.push_back(c);
  for (size_t i = 0; i < levels.size(); ++i) {
    if (i) path += "/" + levels[i];
    if (i && ::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      *why = "cannot create " + path + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (has_all(read_file(path + "/cgroup.subtree_control"), {"memory", "cpu", "pids"})) continue;
    UniqueFd dir(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dir || !write_file(dir.get(), "cgroup.subtree_control", "+memory +cpu +pids")) {
      *why = "the memory, cpu and pids controllers are not delegated to " + path + " (" + std::strerror(errno) + ")";
      return std::nullopt;
    }
  }
  VmCgroup group;
  // The parent, held open: the launcher removes the group through it after confining itself.
  group.parent_.reset(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!group.parent_) {
    *why = "cannot open " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::string leaf = "bulkhead-" + name;
  group.path_ = path + "/" + leaf;
  // The VM's name is unique among running VMs, so a group by that name was left by a killed
  // launcher: rmdir succeeds once it holds no process. Both calls act on the held parent.
  ::unlinkat(group.parent_.get(), leaf.c_str(), AT_REMOVEDIR);
  if (::mkdirat(group.parent_.get(), leaf.c_str(), 0755) != 0) {
    *why = "cannot create " + group.path_ + ": " + std::strerror(errno);
    return std::nullopt;
  }
  group.leaf_ = leaf;
  group.group_.reset(::openat(group.parent_.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  bool ok = group.group_ && write_file(group.group_.get(), "memory.max", std::to_string(limits.memory_max)) &&
            write_file(group.group_.get(), "pids.max", std::to_string(limits.pids_max)) &&
            write_file(group.group_.get(), "cpu.max",
                       std::to_string(limits.cpu_quota_us) + " " + std::to_string(limits.cpu_period_us));
  if (!ok) {
    *why = "cannot set limits in " + group.path_ + ": " + std::strerror(errno);
    return std::nullopt;  // the destructor removes the half-made group
  }
  return group;
}

VmCgroup::VmCgroup(VmCgroup&& other) noexcept
    : path_(std::move(other.path_)), leaf_(std::move(other.leaf_)), parent_(std::move(other.parent_)),
      group_(std::move(other.group_)) {}

VmCgroup::~VmCgroup() {
  group_.reset();
  if (!parent_ || leaf_.empty()) return;
  // The group empties once the kernel has finished the exited processes' last threads.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::unlinkat(parent_.get(), leaf_.c_str(), AT_REMOVEDIR) == 0 || errno != EBUSY) return;
    ::usleep(10000);
  }
}

}  // namespace bulkhead::launcher
