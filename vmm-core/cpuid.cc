#include "vmm-core/cpuid.h"

#include <algorithm>
#include <cstring>

namespace bulkhead::core {

namespace {
constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheTopology = 0x4;
constexpr uint32_t kLeafExtendedTopology = 0xb;
constexpr uint32_t kLeafV2ExtendedTopology = 0x1f;
constexpr uint32_t kLeafKvmSignature = 0x40000000;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;

uint32_t bits_for(uint32_t count) {
  uint32_t bits = 0;
  while ((1u << bits) < count) ++bits;
  return bits;
}
}  // namespace

std::vector<kvm_cpuid_entry2> build_cpuid(const std::vector<kvm_cpuid_entry2>& supported, uint32_t vcpu_index,
                                          uint32_t vcpu_count) {
  std::vector<kvm_cpuid_entry2> out;
  uint32_t apic_id = vcpu_index;
  bool has_kvm_signature = false;
  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case kLeafFeatures:
        // Initial APIC ID, logical processors per package, CLFLUSH line size (8 * 8 bytes).
        e.ebx = (apic_id << 24) | (std::min(vcpu_count, 255u) << 16) | (8 << 8);
        e.ecx |= kEcxHypervisor;
        if (vcpu_count > 1) e.edx |= kEdxHtt;
        break;
      case kLeafCacheTopology:
        // One core per vCPU, each with private caches.
        e.eax = (e.eax & 0x3fff) | ((std::min(vcpu_count, 64u) - 1) << 26);
        break;
      case kLeafExtendedTopology:
      case kLeafV2ExtendedTopology:
        continue;  // replaced below
      case kLeafKvmSignature:
        has_kvm_signature = true;
        break;
    }
    out.push_back(e);
  }
  // Extended topology: level 0 = SMT (one thread per core), level 1 = cores in the package.
  for (uint32_t level = 0; level < 3; ++level) {
    kvm_cpuid_entry2 e{};
    e.function = kLeafExtendedTopology;
    e.index = level;
    e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    e.edx = apic_id;
    e.ecx = level;
    if (level == 0) {
      e.ebx = 1;
      e.ecx |= 1 << 8;
    } else if (level == 1) {
      e.eax = bits_for(vcpu_count);
      e.ebx = vcpu_count;
      e.ecx |= 2 << 8;
    }
    out.push_back(e);
  }
  if (!has_kvm_signature) {
    kvm_cpuid_entry2 e{};
    e.function = kLeafKvmSignature;
    e.eax = kLeafKvmSignature + 1;
    std::memcpy(&e.ebx, "KVMK", 4);
    std::memcpy(&e.ecx, "VMKV", 4);
    std::memcpy(&e.edx, "M\0\0\0", 4);
    out.push_back(e);
  }
  return out;
}

}  // namespace bulkhead::core
