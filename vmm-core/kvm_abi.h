// KVM structures that end in a flexible array, with their C layout and ioctl numbers.
//
// Debian 12's linux-libc-dev (6.1) declares those arrays with __DECLARE_FLEX_ARRAY, whose
// empty struct has size 1 in C++: the C++ view of kvm_cpuid2, kvm_msrs, kvm_msr_list and
// kvm_irq_routing has the array at the wrong offset and the ioctl numbers encode the wrong
// size (KVM then answers EINVAL). C++ code must use these definitions instead.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <vector>

namespace bulkhead::core {

struct KvmCpuid2Header {  // followed by nent kvm_cpuid_entry2
  uint32_t nent;
  uint32_t padding;
};
struct KvmMsrsHeader {  // followed by nmsrs kvm_msr_entry
  uint32_t nmsrs;
  uint32_t pad;
};
struct KvmMsrListHeader {  // followed by nmsrs uint32_t indices
  uint32_t nmsrs;
};
struct KvmIrqRoutingHeader {  // followed by nr kvm_irq_routing_entry
  uint32_t nr;
  uint32_t flags;
};
static_assert(sizeof(KvmCpuid2Header) == 8 && sizeof(KvmMsrsHeader) == 8 && sizeof(KvmMsrListHeader) == 4 &&
              sizeof(KvmIrqRoutingHeader) == 8);

inline constexpr unsigned long kKvmGetSupportedCpuid = _IOWR(KVMIO, 0x05, KvmCpuid2Header);
inline constexpr unsigned long kKvmSetCpuid2 = _IOW(KVMIO, 0x90, KvmCpuid2Header);
inline constexpr unsigned long kKvmSetMsrs = _IOW(KVMIO, 0x89, KvmMsrsHeader);
inline constexpr unsigned long kKvmGetMsrIndexList = _IOWR(KVMIO, 0x02, KvmMsrListHeader);
inline constexpr unsigned long kKvmSetGsiRouting = _IOW(KVMIO, 0x6a, KvmIrqRoutingHeader);

// A header followed by `count` entries, contiguous as the kernel expects.
template <typename Header, typename Entry>
class KvmArray {
 public:
  explicit KvmArray(uint32_t count) : storage_((sizeof(Header) + count * sizeof(Entry) + 7) / 8) {}
  Header* header() { return reinterpret_cast<Header*>(storage_.data()); }
  // Entries start right after the header; both are trivially copyable POD from the KVM ABI.
  Entry* entries() { return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.data()) + sizeof(Header)); }
  void* data() { return storage_.data(); }

 private:
  std::vector<uint64_t> storage_;
};

}  // namespace bulkhead::core
