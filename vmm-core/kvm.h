// Thin RAII wrappers over the KVM API: the system fd (handed to us), a VM and its vCPUs.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"

namespace bulkhead::core {

// ioctl() with EINTR retry; throws SystemError naming `what` on failure.
int kvm_ioctl(int fd, unsigned long request, void* arg, const char* what);
int kvm_ioctl(int fd, unsigned long request, unsigned long arg, const char* what);

class Kvm {
 public:
  // Takes the /dev/kvm descriptor the launcher opened; checks the API version.
  explicit Kvm(UniqueFd fd);

  int fd() const { return fd_.get(); }
  int check_extension(int cap) const;
  void require_extension(int cap, const char* name) const;
  size_t vcpu_mmap_size() const { return vcpu_mmap_size_; }
  std::vector<kvm_cpuid_entry2> supported_cpuid() const;
  std::vector<uint32_t> msr_index_list() const;

 private:
  UniqueFd fd_;
  size_t vcpu_mmap_size_ = 0;
};

}  // namespace bulkhead::core
