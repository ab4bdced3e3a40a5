#include "vmm-core/cpuid.h"

#include <algorithm>
#include <cstring>

namespace bulkhead::core {

namespace {
constexpr uint32_t kLeafFeatures = 0x1;
constexpr uint32_t kLeafCacheTopology = 0x4;
constexpr uint32_t kLeafStructuredFeatures = 0x7;
constexpr uint32_t kLeafXsave = 0xd;
constexpr uint32_t kLeafExtendedFeatures = 0x80000001;
constexpr uint32_t kLeafExtendedTopology = 0xb;
constexpr uint32_t kLeafV2ExtendedTopology = 0x1f;
constexpr uint32_t kLeafKvmSignature = 0x40000000;
constexpr uint32_t kEcxHypervisor = 1u << 31;
constexpr uint32_t kEdxHtt = 1u << 28;
constexpr uint32_t bit(int n) { return 1u << n; }

// Features that need XSAVE-managed state, by leaf and register (Intel SDM vol. 2A, CPUID;
// AMD APM vol. 3, appendix E). The baseline model clears them all.
constexpr uint32_t kLeaf1EcxXsave = bit(12) /*FMA*/ | bit(26) /*XSAVE*/ | bit(27) /*OSXSAVE*/ | bit(28) /*AVX*/ |
                                    bit(29) /*F16C*/;
constexpr uint32_t kLeaf7EbxXsave = bit(5) /*AVX2*/ | bit(14) /*MPX*/ | bit(16) /*AVX512F*/ | bit(17) /*DQ*/ |
                                    bit(21) /*IFMA*/ | bit(26) /*PF*/ | bit(27) /*ER*/ | bit(28) /*CD*/ | bit(30) /*BW*/ |
                                    bit(31) /*VL*/;
constexpr uint32_t kLeaf7EcxXsave = bit(1) /*VBMI*/ | bit(3) /*PKU*/ | bit(4) /*OSPKE*/ | bit(6) /*VBMI2*/ |
                                    bit(7) /*CET_SS*/ | bit(9) /*VAES*/ | bit(10) /*VPCLMULQDQ*/ | bit(11) /*VNNI*/ |
                                    bit(12) /*BITALG*/ | bit(14) /*VPOPCNTDQ*/;
constexpr uint32_t kLeaf7EdxXsave = bit(2) /*4VNNIW*/ | bit(3) /*4FMAPS*/ | bit(8) /*VP2INTERSECT*/ | bit(20) /*CET_IBT*/ |
                                    bit(22) /*AMX_BF16*/ | bit(23) /*FP16*/ | bit(24) /*AMX_TILE*/ | bit(25) /*AMX_INT8*/;
constexpr uint32_t kLeaf7Sub1EaxXsave = bit(4) /*AVX_VNNI*/ | bit(5) /*AVX512_BF16*/ | bit(23) /*AVX_IFMA*/;
constexpr uint32_t kExtEcxXsave = bit(11) /*XOP*/ | bit(15) /*LWP*/ | bit(16) /*FMA4*/;

uint32_t bits_for(uint32_t count) {
  uint32_t bits = 0;
  while ((1u << bits) < count) ++bits;
  return bits;
}
}  // namespace

std::vector<kvm_cpuid_entry2> build_cpuid(const std::vector<kvm_cpuid_entry2>& supported, uint32_t vcpu_index,
                                          uint32_t vcpu_count, const CpuModel& model) {
  std::vector<kvm_cpuid_entry2> out;
  uint32_t apic_id = vcpu_index;
  bool has_kvm_signature = false;
  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case kLeafFeatures:
        // Initial APIC ID, logical processors per package, CLFLUSH line size (8 * 8 bytes).
        e.ebx = (apic_id << 24) | (std::min(vcpu_count, 255u) << 16) | (8 << 8);
        e.ecx |= kEcxHypervisor;
        if (!model.host) e.ecx &= ~kLeaf1EcxXsave;
        if (vcpu_count > 1) e.edx |= kEdxHtt;
        break;
      case kLeafStructuredFeatures:
        if (model.host) break;
        if (e.index == 0) {
          e.ebx &= ~kLeaf7EbxXsave;
          e.ecx &= ~kLeaf7EcxXsave;
          e.edx &= ~kLeaf7EdxXsave;
        } else if (e.index == 1) {
          e.eax &= ~kLeaf7Sub1EaxXsave;
        }
        break;
      case kLeafXsave:
        if (!model.host) continue;  // no XSAVE: the leaf does not exist
        break;
      case kLeafExtendedFeatures:
        if (!model.host) e.ecx &= ~kExtEcxXsave;
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
