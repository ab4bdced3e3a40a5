// The CPUID a vCPU sees: what KVM supports, with this vCPU's topology filled in.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace bulkhead::core {

std::vector<kvm_cpuid_entry2> build_cpuid(const std::vector<kvm_cpuid_entry2>& supported, uint32_t vcpu_index,
                                          uint32_t vcpu_count);

}  // namespace bulkhead::core
