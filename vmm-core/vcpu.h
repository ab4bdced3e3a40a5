// One vCPU: its KVM descriptor, shared kvm_run page and the thread that runs it.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "common/mapping.h"
#include "common/unique_fd.h"
#include "vmm-core/boot/kernel_image.h"
#include "vmm-core/bus.h"
#include "vmm-core/cpuid.h"
#include "vmm-core/kvm.h"
#include "vmm-core/vm_control.h"

namespace bulkhead::core {

class Vcpu {
 public:
  Vcpu(const Kvm& kvm, int vm_fd, uint32_t index, uint32_t count, const std::vector<kvm_cpuid_entry2>& cpuid,
       const CpuModel& model, const std::vector<uint32_t>& msr_list);
  ~Vcpu();

  // Boot CPU only: registers for the loader's entry mode.
  void set_boot_state(const BootEntry& entry);
  // `host_cpu`: the only host CPU its thread may run on, if any.
  void start(const Bus& pio, const Bus& mmio, VmControl& vm, std::optional<uint32_t> host_cpu = std::nullopt);
  // Makes KVM_RUN return promptly (immediate_exit plus a signal to the thread).
  void kick();
  void join();

 private:
  void run_loop(const Bus& pio, const Bus& mmio, VmControl& vm);
  void handle_io(const Bus& pio);
  void handle_mmio(const Bus& mmio);
  std::string describe_state();

  uint32_t index_;
  UniqueFd fd_;
  Mapping run_mapping_;
  kvm_run* run_;
  std::thread thread_;
};

// Installs the no-op signal handler that kick() relies on; call once before vCPUs start.
void install_vcpu_kick_handler();

}  // namespace bulkhead::core
