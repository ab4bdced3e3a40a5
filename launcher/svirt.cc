#include "launcher/svirt.h"

#include <fcntl.h>
#include <selinux/selinux.h>
#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace bulkhead::launcher {

namespace {

constexpr uint32_t kCategories = 1024;  // Debian's policy: c0..c1023
constexpr const char* kLabelAttribute = "security.selinux";

}  // namespace

SelinuxMode parse_selinux_mode(const std::string& text) {
  if (text == "auto") return SelinuxMode::kAuto;
  if (text == "on") return SelinuxMode::kOn;
  if (text == "off") return SelinuxMode::kOff;
  throw InputError("--selinux must be auto, on or off, not '" + text + "'");
}

std::string allocate_mcs_pair(const std::vector<std::string>& reserved, const std::function<uint32_t()>& random) {
  constexpr uint64_t kPairs = uint64_t{kCategories} * (kCategories - 1) / 2;
  if (reserved.size() >= kPairs) throw InputError("every SELinux category pair is in use");
  for (;;) {
    uint32_t a = random() % kCategories, b = random() % kCategories;
    if (a == b) continue;
    if (a > b) std::swap(a, b);
    std::string pair = "s0:c" + std::to_string(a) + ",c" + std::to_string(b);
    if (std::find(reserved.begin(), reserved.end(), pair) == reserved.end()) return pair;
  }
}

bool SvirtLabels::wanted(SelinuxMode mode, std::string* note) {
  if (mode == SelinuxMode::kOff) return false;
  if (is_selinux_enabled() > 0) return true;
  if (mode == SelinuxMode::kOn) throw InputError("--selinux=on, but SELinux is not enabled on this host");
  *note = "SELinux is not enabled on this host; running without sVirt labels";
  return false;
}

SvirtLabels::SvirtLabels(SvirtLabels&& other) noexcept
    : mcs_(std::move(other.mcs_)), relabelled_(std::move(other.relabelled_)) {
  other.relabelled_.clear();
}

SvirtLabels::~SvirtLabels() { restore_files(); }

std::string SvirtLabels::process_context(const std::string& type) const {
  return "system_u:system_r:" + type + ":" + mcs_;
}

std::string SvirtLabels::file_context(const std::string& type) const {
  // A read-only image may be shared by many VMs: no categories, a type no VM may write.
  return "system_u:object_r:" + type + ":" + (type == "bulkhead_image_ro_t" ? std::string("s0") : mcs_);
}

void SvirtLabels::label_file(int fd, const std::string& type, const std::string& what, bool restore) {
  Relabelled entry;
  char* original = nullptr;
  // fgetfilecon_raw allocates the label string; freecon releases it.
  if (fgetfilecon_raw(fd, &original) >= 0) {
    entry.original = original;
    freecon(original);
  } else if (errno != ENODATA && errno != ENOTSUP) {
    throw_errno("reading the SELinux label of " + what);
  }
  std::string context = file_context(type);
  if (fsetfilecon_raw(fd, context.c_str()) != 0) throw_errno("labelling " + what + " " + context);
  if (!restore) return;
  // Our own descriptor, so the label is restored on the same file even if it is renamed.
  entry.fd.reset(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!entry.fd) throw_errno("dup");
  relabelled_.push_back(std::move(entry));
}

void SvirtLabels::restore_files() {
  for (Relabelled& r : relabelled_) {
    // Plain xattr calls: the supervisor's seccomp policy allows these, not libselinux's extra probing.
    if (r.original.empty()) ::fremovexattr(r.fd.get(), kLabelAttribute);
    else ::fsetxattr(r.fd.get(), kLabelAttribute, r.original.c_str(), r.original.size() + 1, 0);
  }
  relabelled_.clear();
}

SvirtLabels::SocketLabelScope::SocketLabelScope(const std::string& context) {
  char* previous = nullptr;
  // getsockcreatecon_raw allocates the label string (none: the default); freecon releases it.
  if (getsockcreatecon_raw(&previous) != 0) throw_errno("getsockcreatecon");
  if (previous) {
    previous_ = previous;
    freecon(previous);
  }
  if (setsockcreatecon_raw(context.c_str()) != 0) throw_errno("setsockcreatecon " + context);
}

SvirtLabels::SocketLabelScope::~SocketLabelScope() { setsockcreatecon_raw(previous_.empty() ? nullptr : previous_.c_str()); }

}  // namespace bulkhead::launcher
