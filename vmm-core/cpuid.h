// The CPUID a vCPU sees: what KVM supports, with this vCPU's topology filled in, minus what
// the chosen CPU model leaves out.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

namespace bulkhead::core {

struct CpuModel {
  // false: the baseline model, with no XSAVE-managed state (XSAVE, AVX and everything
  // built on it, MPX, PKU): the guest uses FXSAVE, as with QEMU's default CPU. A guest then
  // never depends on the host's XSAVE virtualization being complete (a nested KVM under
  // QEMU TCG does not see the guest's XSETBV and reports stale XSAVE sizes, a Linux warning).
  bool host = false;
};

std::vector<kvm_cpuid_entry2> build_cpuid(const std::vector<kvm_cpuid_entry2>& supported, uint32_t vcpu_index,
                                          uint32_t vcpu_count, const CpuModel& model = {});

}  // namespace bulkhead::core
