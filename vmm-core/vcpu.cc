#include "vmm-core/vcpu.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/cpuid.h"
#include "vmm-core/kvm_abi.h"

namespace bulkhead::core {

namespace {

constexpr int kKickSignal = SIGUSR1;
constexpr uint32_t kMsrMiscEnable = 0x1a0;
constexpr uint64_t kMiscEnableFastStrings = 1;
constexpr uint32_t kApicLvtLint0 = 0x350, kApicLvtLint1 = 0x360;
constexpr uint32_t kApicModeExtInt = 0x700, kApicModeNmi = 0x400;

constexpr uint64_t kCr0Pe = 1ull << 0, kCr0Mp = 1ull << 1, kCr0Et = 1ull << 4, kCr0Ne = 1ull << 5, kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8, kEferLma = 1ull << 10;

kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.s = 1;
  s.g = 1;
  s.l = code64;
  s.db = !code64;
  return s;
}

}  // namespace

void install_vcpu_kick_handler() {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};  // only interrupts KVM_RUN
  sigemptyset(&sa.sa_mask);
  // Installs a handler that touches nothing; no SA_RESTART so KVM_RUN returns EINTR.
  if (::sigaction(kKickSignal, &sa, nullptr) != 0) throw_errno("sigaction");
}

Vcpu::Vcpu(const Kvm& kvm, int vm_fd, uint32_t index, uint32_t count, const std::vector<kvm_cpuid_entry2>& supported,
           const CpuModel& model, const std::vector<uint32_t>& msr_list)
    : index_(index) {
  fd_.reset(kvm_ioctl(vm_fd, KVM_CREATE_VCPU, static_cast<unsigned long>(index), "KVM_CREATE_VCPU"));
  run_mapping_ = Mapping::map(fd_.get(), kvm.vcpu_mmap_size(), PROT_READ | PROT_WRITE);
  // The kernel's kvm_run structure starts at offset 0 of the vCPU mapping.
  run_ = reinterpret_cast<kvm_run*>(run_mapping_.data());

  std::vector<kvm_cpuid_entry2> entries = build_cpuid(supported, index, count, model);
  KvmArray<KvmCpuid2Header, kvm_cpuid_entry2> cpuid(static_cast<uint32_t>(entries.size()));
  cpuid.header()->nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), cpuid.entries());
  kvm_ioctl(fd_.get(), kKvmSetCpuid2, cpuid.data(), "KVM_SET_CPUID2");

  // Only MSRs this KVM lists; KVM_SET_MSRS returns how many it accepted.
  if (std::find(msr_list.begin(), msr_list.end(), kMsrMiscEnable) != msr_list.end()) {
    KvmArray<KvmMsrsHeader, kvm_msr_entry> msrs(1);
    msrs.header()->nmsrs = 1;
    msrs.entries()[0].index = kMsrMiscEnable;
    msrs.entries()[0].data = kMiscEnableFastStrings;
    if (kvm_ioctl(fd_.get(), kKvmSetMsrs, msrs.data(), "KVM_SET_MSRS") != 1) throw InputError("KVM refused MSR_IA32_MISC_ENABLE");
  }

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  kvm_ioctl(fd_.get(), KVM_SET_FPU, &fpu, "KVM_SET_FPU");

  // Local interrupts as PC firmware leaves them: the BSP takes the 8259 through LINT0
  // (ExtINT), every CPU takes NMI on LINT1.
  kvm_lapic_state lapic{};
  kvm_ioctl(fd_.get(), KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
  auto set_reg = [&](uint32_t offset, uint32_t value) { std::memcpy(&lapic.regs[offset], &value, 4); };
  if (index == 0) set_reg(kApicLvtLint0, kApicModeExtInt);
  set_reg(kApicLvtLint1, kApicModeNmi);
  kvm_ioctl(fd_.get(), KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC");
}

Vcpu::~Vcpu() { join(); }

void Vcpu::set_boot_state(const BootEntry& entry) {
  kvm_sregs sregs{};
  kvm_ioctl(fd_.get(), KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
  bool long_mode = entry.mode == BootEntry::Mode::kLong64;
  sregs.cs = flat_segment(long_mode ? kBootCode64Selector : kBootCode32Selector, 0xb, long_mode);
  kvm_segment data = flat_segment(kBootDataSelector, 0x3, false);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
  sregs.tr = {};
  sregs.tr.selector = kBootTssSelector;
  sregs.tr.limit = 0xfff;
  sregs.tr.type = 0xb;
  sregs.tr.present = 1;
  sregs.ldt = {};
  sregs.ldt.limit = 0xffff;
  sregs.ldt.type = 0x2;
  sregs.ldt.present = 1;
  sregs.gdt.base = kBootGdtAddr;
  sregs.gdt.limit = sizeof(kBootGdt) - 1;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  if (long_mode) {
    sregs.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Pg;
    sregs.cr3 = kPageTablesAddr;
    sregs.cr4 = kCr4Pae;
    sregs.efer = kEferLme | kEferLma;
  } else {
    sregs.cr0 = kCr0Pe | kCr0Et;
    sregs.cr3 = 0;
    sregs.cr4 = 0;
    sregs.efer = 0;
  }
  kvm_ioctl(fd_.get(), KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");

  kvm_regs regs{};
  regs.rflags = 0x2;
  regs.rip = entry.rip;
  regs.rbx = entry.rbx;
  regs.rsi = entry.rsi;
  regs.rsp = long_mode ? 0x8ff0 : 0;
  kvm_ioctl(fd_.get(), KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

void Vcpu::start(const Bus& pio, const Bus& mmio, VmControl& vm, std::optional<uint32_t> host_cpu) {
  thread_ = std::thread([this, &pio, &mmio, &vm, host_cpu] {
    char name[16];
    std::snprintf(name, sizeof name, "bh-vcpu%u", index_);
    // Names this thread; unlike pthread_setname_np it needs no /proc (the root is empty).
    ::prctl(PR_SET_NAME, name, 0, 0, 0);
    try {
      if (host_cpu) {
        cpu_set_t only;
        CPU_ZERO(&only);
        CPU_SET(*host_cpu, &only);
        // Pins this thread (pid 0: the caller) before its first KVM_RUN, from a local set.
        if (::sched_setaffinity(0, sizeof only, &only) != 0)
          throw_errno("pinning it to host CPU " + std::to_string(*host_cpu) + " (--vcpu-pin)");
      }
      run_loop(pio, mmio, vm);
    } catch (const std::exception& e) {
      vm.request_stop(ipc::VmStopped::VMM_ERROR, 1, "vCPU " + std::to_string(index_) + ": " + e.what());
    }
  });
}

void Vcpu::kick() {
  // immediate_exit is a byte in the shared kvm_run page that KVM checks on entry.
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
  if (thread_.joinable()) pthread_kill(thread_.native_handle(), kKickSignal);
}

void Vcpu::join() {
  if (thread_.joinable()) thread_.join();
}

void Vcpu::run_loop(const Bus& pio, const Bus& mmio, VmControl& vm) {
  while (!vm.stopping()) {
    vm.park_while_paused();
    // KVM_RUN on our own vCPU; the exit reason is in the shared kvm_run page.
    if (::ioctl(fd_.get(), KVM_RUN, 0) < 0) {
      if (errno != EINTR && errno != EAGAIN) throw_errno("KVM_RUN");
      // A kick for a stop or a pause, both of which the loop's head sees: clear the flag,
      // or every later KVM_RUN would return at once.
      __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
      continue;
    }
    switch (run_->exit_reason) {
      case KVM_EXIT_IO:
        handle_io(pio);
        break;
      case KVM_EXIT_MMIO:
        handle_mmio(mmio);
        break;
      case KVM_EXIT_INTR:
      case KVM_EXIT_HLT:
        break;
      case KVM_EXIT_SHUTDOWN:
        vm.request_stop(ipc::VmStopped::GUEST_RESET, 0, "guest reset the machine (triple fault on vCPU " +
                                                            std::to_string(index_) + ")");
        return;
      case KVM_EXIT_SYSTEM_EVENT:
        vm.request_stop(run_->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN ? ipc::VmStopped::GUEST_POWEROFF
                                                                               : ipc::VmStopped::GUEST_RESET,
                        0, "guest system event " + std::to_string(run_->system_event.type));
        return;
      case KVM_EXIT_INTERNAL_ERROR:
      case KVM_EXIT_FAIL_ENTRY:
        vm.request_stop(ipc::VmStopped::VMM_ERROR, 1, describe_state());
        return;
      default:
        vm.request_stop(ipc::VmStopped::VMM_ERROR, 1, "unexpected KVM exit " + std::to_string(run_->exit_reason));
        return;
    }
  }
}

void Vcpu::handle_io(const Bus& pio) {
  auto& io = run_->io;
  // KVM places the data for this exit inside the kvm_run mapping at data_offset.
  uint8_t* data = reinterpret_cast<uint8_t*>(run_) + io.data_offset;
  if (io.count > 1) {  // rep ins/outs: the whole string in one access
    if (io.direction == KVM_EXIT_IO_OUT) pio.write_string(io.port, io.size, io.count, data);
    else pio.read_string(io.port, io.size, io.count, data);
  } else if (io.direction == KVM_EXIT_IO_OUT) {
    pio.write(io.port, {data, io.size});
  } else {
    pio.read(io.port, {data, io.size});
  }
}

void Vcpu::handle_mmio(const Bus& mmio) {
  auto& m = run_->mmio;
  std::span<uint8_t> data(m.data, std::min<uint32_t>(m.len, sizeof m.data));
  if (m.is_write)
    mmio.write(m.phys_addr, data);
  else
    mmio.read(m.phys_addr, data);
}

std::string Vcpu::describe_state() {
  char text[512];
  int n;
  if (run_->exit_reason == KVM_EXIT_FAIL_ENTRY) {
    n = std::snprintf(text, sizeof text, "KVM could not enter vCPU %u (hardware reason 0x%llx)", index_,
                      static_cast<unsigned long long>(run_->fail_entry.hardware_entry_failure_reason));
  } else {
    n = std::snprintf(text, sizeof text, "KVM internal error on vCPU %u (suberror %u", index_, run_->internal.suberror);
    for (uint32_t i = 0; i < run_->internal.ndata && i < 8 && n < 400; ++i)
      n += std::snprintf(text + n, sizeof text - n, "%s0x%llx", i ? " " : ", data ",
                         static_cast<unsigned long long>(run_->internal.data[i]));
    n += std::snprintf(text + n, sizeof text - n, ")");
  }
  kvm_regs regs{};
  // KVM_GET_REGS into a local; fine on a stopped vCPU from its own thread.
  if (::ioctl(fd_.get(), KVM_GET_REGS, &regs) == 0)
    std::snprintf(text + n, sizeof text - n, " at rip 0x%llx", static_cast<unsigned long long>(regs.rip));
  return text;
}

}  // namespace bulkhead::core
