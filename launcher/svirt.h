// SELinux sVirt labels for one VM: every process of the VM runs at the same random MCS
// category pair s0:cA,cB (categories separate VMs), in a domain per role (types separate the
// roles inside one VM). The policy is selinux/bulkhead.te.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::launcher {

enum class SelinuxMode { kAuto, kOn, kOff };
// "auto", "on" or "off"; throws InputError otherwise.
SelinuxMode parse_selinux_mode(const std::string& text);

// A category pair "s0:cA,cB" with A < B < 1024, unlike every pair in `reserved`. Never a
// single category: that would be a subset of every pair that contains it. `random` returns
// uniformly distributed 32-bit numbers. Throws InputError when every pair is taken.
std::string allocate_mcs_pair(const std::vector<std::string>& reserved, const std::function<uint32_t()>& random);

class SvirtLabels {
 public:
  // Whether labels are applied: not with --selinux=off, nor with auto on a host without
  // SELinux (*note says so). With on and no SELinux, throws InputError.
  static bool wanted(SelinuxMode mode, std::string* note);
  // Labels at the VM's category pair (see allocate_mcs_pair).
  explicit SvirtLabels(std::string mcs) : mcs_(std::move(mcs)) {}
  ~SvirtLabels();  // restores the labels of every file relabelled through label_file
  SvirtLabels(SvirtLabels&&) noexcept;
  SvirtLabels& operator=(SvirtLabels&&) = delete;

  const std::string& mcs() const { return mcs_; }
  // "system_u:system_r:<type>:s0:cA,cB" for a role's domain, e.g. "bulkhead_core_t".
  std::string process_context(const std::string& type) const;
  // "system_u:object_r:<type>:s0:cA,cB", or at plain s0 for the shared read-only image type.
  std::string file_context(const std::string& type) const;

  // Relabels the open file (an image, the state directory) to `type` at the VM's categories.
  // With `restore`, its original label comes back at the end. Read-only files shared by
  // several VMs keep their label (as libvirt does): restoring it would cut off a VM still
  // using them. Throws SystemError naming `what` if SELinux refuses.
  void label_file(int fd, const std::string& type, const std::string& what, bool restore = true);
  // Restores every original label now (also done by the destructor).
  void restore_files();
  // The label of every socket of the VM: devices may only use sockets of their own VM.
  std::string socket_context() const { return file_context("bulkhead_socket_t"); }
  // The VM's control socket (`bulkhead ctl`): a type of its own, which an operator's client
  // may connect to and no role of any VM may.
  std::string control_socket_context() const { return file_context("bulkhead_control_t"); }
  // While one exists, sockets this thread creates carry `context`; at its end, the context
  // of the scope it was nested in (if any) is back.
  class SocketLabelScope {
   public:
    explicit SocketLabelScope(const std::string& context);
    ~SocketLabelScope();
    SocketLabelScope(const SocketLabelScope&) = delete;
    SocketLabelScope& operator=(const SocketLabelScope&) = delete;

   private:
    std::string previous_;  // empty: the default (the creating process's own label)
  };

 private:
  struct Relabelled {
    UniqueFd fd;
    std::string original;  // empty: the file had no label
  };
  std::string mcs_;
  std::vector<Relabelled> relabelled_;
};

}  // namespace bulkhead::launcher
