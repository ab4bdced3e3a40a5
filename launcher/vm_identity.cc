#include "launcher/vm_identity.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "common/error.h"

namespace bulkhead::launcher {

namespace {

constexpr const char* kStateFiles[] = {"launcher", "uid", "mcs", "control.sock"};

bool valid_name(const std::string& n) {
  if (n.empty() || n.size() > 64 || n[0] == '.') return false;
  return std::all_of(n.begin(), n.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'; });
}

// "<pid> <start time>" of a process: a pid alone could be reused after a crash.
std::string process_stamp(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return "";
  size_t close = line.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return std::to_string(pid) + " " + field;
  return "";
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

bool alive(const std::string& dir) {
  std::string stamp = read_line(dir + "/launcher");
  if (stamp.empty()) return false;
  pid_t pid = static_cast<pid_t>(std::atoi(stamp.c_str()));
  return pid > 0 && process_stamp(pid) == stamp;
}

template <typename F>
void for_each_entry(const std::string& dir, F f) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") f(n);
  }
  ::closedir(d);
}

template <typename F>
void for_each_live_vm(const std::string& root, F f) {
  for_each_entry(root, [&](const std::string& n) {
    if (n[0] != '.' && alive(root + "/" + n)) f(root + "/" + n);
  });
}

// Whether any process on the host has `uid` as its real uid (such a uid is never handed to a
// VM). The kernel counts each uid's processes for RLIMIT_NPROC: a child that takes the uid
// with a limit of 2 can fork only if it is the uid's one process. That answers in one fork,
// where reading every /proc/<pid>/status took over a second with 600 VMs running.
bool uid_has_processes(uint32_t uid) {
  pid_t child = ::fork();
  if (child < 0) throw_errno("fork");
  if (child == 0) {
    rlimit two{2, 2};
    // In the child only: the limit and the uid (which also drops every capability, so the
    // limit applies); then a fork that exits at once, and the verdict as the exit status.
    if (::setrlimit(RLIMIT_NPROC, &two) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(2);
    pid_t probe = ::fork();
    if (probe == 0) ::_exit(0);
    if (probe > 0) ::waitpid(probe, nullptr, 0);
    ::_exit(probe > 0 ? 0 : errno == EAGAIN ? 1 : 2);
  }
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) == 2)
    throw InputError("cannot check whether uid " + std::to_string(uid) + " is in use");
  return WEXITSTATUS(status) == 1;
}

// Serialises identity allocation between launchers starting at the same time.
class RootLock {
 public:
  explicit RootLock(const std::string& root) {
    // The lock file lives in the state root; flock() is released when fd_ closes.
    fd_.reset(::open((root + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd_ || ::flock(fd_.get(), LOCK_EX) != 0)
      throw InputError("cannot lock " + root + "/.lock: " + std::strerror(errno));
  }

 private:
  UniqueFd fd_;
};

void remove_state(int root, const std::string& leaf) {
  // Only the files we create live here; anything else makes rmdir fail, leaving it for the operator.
  int dir = ::openat(root, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir >= 0) {
    for (const char* f : kStateFiles) ::unlinkat(dir, f, 0);
    ::close(dir);
  }
  ::unlinkat(root, leaf.c_str(), AT_REMOVEDIR);
}

}  // namespace

std::vector<uint32_t> VmIdentity::reserved_uids(const std::string& root) {
  std::vector<uint32_t> uids;
  for_each_live_vm(root, [&](const std::string& dir) {
    uids.push_back(static_cast<uint32_t>(std::strtoul(read_line(dir + "/uid").c_str(), nullptr, 10)));
  });
  return uids;
}

std::vector<std::string> VmIdentity::reserved_mcs(const std::string& root) {
  std::vector<std::string> pairs;
  for_each_live_vm(root, [&](const std::string& dir) {
    std::string mcs = read_line(dir + "/mcs");
    if (!mcs.empty()) pairs.push_back(mcs);
  });
  return pairs;
}

VmIdentity VmIdentity::create(const IdentityRequest& request) {
  VmIdentity id;
  id.name_ = request.name.value_or("vm" + std::to_string(::getpid()));
  if (!valid_name(id.name_)) throw InputError("VM name '" + id.name_ + "' must be 1-64 letters, digits, '-', '_' or '.'");
  id.state_dir_ = request.state_dir.value_or(std::string(kDefaultStateRoot) + "/" + id.name_);
  while (id.state_dir_.size() > 1 && id.state_dir_.back() == '/') id.state_dir_.pop_back();
  size_t slash = id.state_dir_.rfind('/');
  std::string root = slash == std::string::npos ? "." : slash == 0 ? "/" : id.state_dir_.substr(0, slash);
  id.leaf_ = id.state_dir_.substr(slash == std::string::npos ? 0 : slash + 1);
  if (!valid_name(id.leaf_)) throw InputError("--state-dir " + id.state_dir_ + ": the last component must be a plain name");
  // The default root is ours to create (0711: others may reach sockets in it, not list VMs).
  if (!request.state_dir && ::mkdir(root.c_str(), 0711) != 0 && errno != EEXIST)
    throw InputError("cannot create " + root + ": " + std::strerror(errno));
  id.root_fd_.reset(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!id.root_fd_) throw InputError("state directory parent " + root + ": " + std::strerror(errno));
  RootLock lock(root);
  struct stat st;
  if (::lstat(id.state_dir_.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw InputError(id.state_dir_ + " exists and is not a directory");
    if (alive(id.state_dir_))
      throw InputError("a VM named '" + id.leaf_ + "' is already running (state in " + id.state_dir_ + ")");
  }
  // State left by launchers that were killed (their VM's processes died with them) goes, ours
  // included; a directory holding anything else stays.
  for_each_entry(root, [&](const std::string& n) {
    std::string dir = root + "/" + n;
    if (n[0] != '.' && ::lstat((dir + "/launcher").c_str(), &st) == 0 && !alive(dir)) remove_state(id.root_fd_.get(), n);
  });
  ::unlinkat(id.root_fd_.get(), id.leaf_.c_str(), AT_REMOVEDIR);  // an empty directory is fine to take over
  if (::lstat(id.state_dir_.c_str(), &st) == 0)
    throw InputError(id.state_dir_ + " holds files Bulkhead did not create; remove them or pick another --state-dir");
  std::vector<uint32_t> reserved = reserved_uids(root);
  if (request.uid) {
    if (*request.uid == 0) throw InputError("--uid 0 would run the VM as root");
    if (std::count(reserved.begin(), reserved.end(), *request.uid))
      throw InputError("uid " + std::to_string(*request.uid) + " is used by another running VM");
    id.uid_ = *request.uid;
  } else {
    std::set<uint32_t> busy(reserved.begin(), reserved.end());
    uint32_t slot = 0;
    while (slot < kVmUidCount && (busy.count(kFirstVmUid + slot) || uid_has_processes(kFirstVmUid + slot))) ++slot;
    if (slot == kVmUidCount) throw InputError("no free VM uid left");
    id.uid_ = kFirstVmUid + slot;
  }
  id.gid_ = request.gid.value_or(id.uid_);
  if (id.gid_ == 0) throw InputError("--gid 0 would run the VM in group root");
  if (request.choose_mcs) id.mcs_ = request.choose_mcs(reserved_mcs(root));
  // mkdirat under the held root; only the launcher (root) may enter it.
  if (::mkdirat(id.root_fd_.get(), id.leaf_.c_str(), 0700) != 0)
    throw InputError("cannot create " + id.state_dir_ + ": " + std::strerror(errno));
  id.dir_fd_.reset(::openat(id.root_fd_.get(), id.leaf_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!id.dir_fd_) {
    remove_state(id.root_fd_.get(), id.leaf_);
    throw InputError("cannot open " + id.state_dir_ + ": " + std::strerror(errno));
  }
  std::ofstream(id.state_dir_ + "/launcher") << process_stamp(::getpid()) << "\n";
  std::ofstream(id.state_dir_ + "/uid") << id.uid_ << "\n";
  if (!id.mcs_.empty()) std::ofstream(id.state_dir_ + "/mcs") << id.mcs_ << "\n";
  return id;
}

VmIdentity::VmIdentity(VmIdentity&& other) noexcept
    : name_(std::move(other.name_)),
      state_dir_(std::move(other.state_dir_)),
      leaf_(std::exchange(other.leaf_, std::string())),
      mcs_(std::move(other.mcs_)),
      uid_(other.uid_),
      gid_(other.gid_),
      root_fd_(std::move(other.root_fd_)),
      dir_fd_(std::move(other.dir_fd_)) {}

VmIdentity::~VmIdentity() {
  if (leaf_.empty() || !root_fd_) return;
  // Through held descriptors only: the confined launcher can open nothing by now.
  for (const char* f : kStateFiles) ::unlinkat(dir_fd_.get(), f, 0);
  ::unlinkat(root_fd_.get(), leaf_.c_str(), AT_REMOVEDIR);
}

}  // namespace bulkhead::launcher
