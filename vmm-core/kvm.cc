#include "vmm-core/kvm.h"

#include <sys/ioctl.h>

#include <cerrno>

#include "common/error.h"
#include "vmm-core/kvm_abi.h"

namespace bulkhead::core {

int kvm_ioctl(int fd, unsigned long request, void* arg, const char* what) {
  int r;
  do {
    // ioctl on a KVM descriptor we own with an argument sized for `request` by the caller.
    r = ::ioctl(fd, request, arg);
  } while (r < 0 && errno == EINTR);
  if (r < 0) throw_errno(what);
  return r;
}

int kvm_ioctl(int fd, unsigned long request, unsigned long arg, const char* what) {
  return kvm_ioctl(fd, request, reinterpret_cast<void*>(arg), what);
}

Kvm::Kvm(UniqueFd fd) : fd_(std::move(fd)) {
  int version = kvm_ioctl(fd_.get(), KVM_GET_API_VERSION, 0ul, "KVM_GET_API_VERSION");
  if (version != KVM_API_VERSION)
    throw InputError("/dev/kvm speaks API version " + std::to_string(version) + ", expected " +
                     std::to_string(KVM_API_VERSION));
  vcpu_mmap_size_ = static_cast<size_t>(kvm_ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0ul, "KVM_GET_VCPU_MMAP_SIZE"));
}

int Kvm::check_extension(int cap) const {
  // KVM_CHECK_EXTENSION takes the capability number by value and only reads it.
  int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, cap);
  return r < 0 ? 0 : r;
}

void Kvm::require_extension(int cap, const char* name) const {
  if (!check_extension(cap)) throw InputError(std::string("this KVM lacks ") + name);
}

std::vector<kvm_cpuid_entry2> Kvm::supported_cpuid() const {
  for (uint32_t n = 128;; n *= 2) {
    KvmArray<KvmCpuid2Header, kvm_cpuid_entry2> cpuid(n);
    cpuid.header()->nent = n;
    // Returns E2BIG when n is too small; we then retry with a larger buffer.
    if (::ioctl(fd_.get(), kKvmGetSupportedCpuid, cpuid.data()) == 0)
      return {cpuid.entries(), cpuid.entries() + cpuid.header()->nent};
    if (errno != E2BIG || n >= 4096) throw_errno("KVM_GET_SUPPORTED_CPUID");
  }
}

std::vector<uint32_t> Kvm::msr_index_list() const {
  KvmMsrListHeader probe{};
  // With nmsrs = 0 the kernel only reports the count (E2BIG).
  ::ioctl(fd_.get(), kKvmGetMsrIndexList, &probe);
  KvmArray<KvmMsrListHeader, uint32_t> list(probe.nmsrs);
  list.header()->nmsrs = probe.nmsrs;
  kvm_ioctl(fd_.get(), kKvmGetMsrIndexList, list.data(), "KVM_GET_MSR_INDEX_LIST");
  return {list.entries(), list.entries() + list.header()->nmsrs};
}

}  // namespace bulkhead::core
