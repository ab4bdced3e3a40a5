#include "cpu.h"

#include "arch.h"
#include "console.h"
#include "drivers/pic.h"

extern "C" {
extern uint8_t isr_stubs[];
extern uint8_t halt_trap[];
void halt_trap_call();
extern uint64_t gdt_tss_descriptors[];
[[noreturn]] void enter_user_mode(void (*entry)(uint64_t), uint64_t stack_top, uint64_t arg);
void isr_dispatch(guest::InterruptFrame* frame);
}

namespace guest {

namespace {

struct __attribute__((packed)) Tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iopb_offset;
  uint8_t iopb[8192];  // all zero: every port is allowed at CPL3
  uint8_t iopb_end;    // the bitmap must end with an all-ones byte
};

struct __attribute__((packed)) IdtEntry {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t reserved;
};

struct __attribute__((packed)) DescriptorPointer {
  uint16_t limit;
  uint64_t base;
};

constexpr int kIsrStubSize = 16;
alignas(16) IdtEntry idt[256];
alignas(16) Tss tss[GUEST_MAX_CPUS];
alignas(16) uint8_t user_stacks[GUEST_MAX_CPUS][GUEST_USER_STACK_SIZE];
extern "C" uint8_t kernel_stacks[];
IrqHandler irq_handlers[16];
uint64_t irq_counts[16];
IrqHandler vector_handlers[256];
uint64_t vector_counts[256];
// What halt_until() waits for.
uint8_t halt_vector;
uint64_t halt_count;

void build_idt() {
  for (int v = 0; v < 256; ++v) {
    uint64_t addr = reinterpret_cast<uint64_t>(isr_stubs) + v * kIsrStubSize;
    idt[v] = {static_cast<uint16_t>(addr), KERNEL_CS, 0, 0x8e, static_cast<uint16_t>(addr >> 16),
              static_cast<uint32_t>(addr >> 32), 0};
  }
}

void install_tss(int cpu) {
  Tss& t = tss[cpu];
  t.rsp[0] = reinterpret_cast<uint64_t>(kernel_stacks) + (cpu + 1) * GUEST_KERNEL_STACK_SIZE;
  t.iopb_offset = __builtin_offsetof(Tss, iopb);
  t.iopb_end = 0xff;
  uint64_t base = reinterpret_cast<uint64_t>(&t);
  uint64_t limit = sizeof(Tss) - 1;
  uint64_t low = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) | (((limit >> 16) & 0xf) << 48) |
                 (((base >> 24) & 0xff) << 56);
  gdt_tss_descriptors[cpu * 2] = low;
  gdt_tss_descriptors[cpu * 2 + 1] = base >> 32;
  uint16_t selector = FIRST_TSS_SELECTOR + cpu * 16;
  asm volatile("ltr %0" ::"r"(selector));
}

const char* exception_name(uint64_t v) {
  static const char* const names[] = {"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO",
                                      "#TS", "#NP", "#SS", "#GP", "#PF", "-",   "#MF", "#AC", "#MC", "#XM"};
  return v < sizeof(names) / sizeof(names[0]) ? names[v] : "exception";
}

}  // namespace

void cpu_init(int cpu) {
  if (cpu == 0) build_idt();
  DescriptorPointer idtr{sizeof(idt) - 1, reinterpret_cast<uint64_t>(idt)};
  asm volatile("lidt %0" ::"m"(idtr));
  install_tss(cpu);
}

void enter_user(int cpu, void (*entry)(uint64_t), uint64_t arg) {
  enter_user_mode(entry, reinterpret_cast<uint64_t>(user_stacks[cpu + 1]) - 16, arg);
}

void halt_until(uint8_t vector, uint64_t count) {
  halt_vector = vector;
  halt_count = count;
  halt_trap_call();
}

void set_irq_handler(uint8_t irq, IrqHandler handler) { irq_handlers[irq] = handler; }
uint64_t irq_count(uint8_t irq) { return __atomic_load_n(&irq_counts[irq], __ATOMIC_RELAXED); }
void set_vector_handler(uint8_t vector, IrqHandler handler) { vector_handlers[vector] = handler; }
uint64_t vector_count(uint8_t vector) { return __atomic_load_n(&vector_counts[vector], __ATOMIC_RELAXED); }

}  // namespace guest

using namespace guest;

extern "C" void isr_dispatch(InterruptFrame* f) {
  constexpr uint64_t kUd = 6, kUd2Length = 2;
  if (f->vector == kUd && f->rip == reinterpret_cast<uint64_t>(halt_trap)) {
    f->rip += kUd2Length;
    // Interrupts on only while halted: each runs nested, on this stack, and then we halt again.
    while (__atomic_load_n(&vector_counts[halt_vector], __ATOMIC_RELAXED) < halt_count) asm volatile("sti; hlt; cli" ::: "memory");
    return;
  }
  if (f->vector < 32) {
    uint64_t cr2;
    asm volatile("mov %%cr2, %0" : "=r"(cr2));
    print_unlocked("\nBH-FAULT %s vector=%lu error=%lx rip=%lx cs=%lx rsp=%lx cr2=%lx apic=%u\n",
                   exception_name(f->vector), f->vector, f->error_code, f->rip, f->cs, f->rsp, cr2, apic_id());
    exit_guest(99);
  }
  if (f->vector >= kPicVectorBase && f->vector < kPicVectorBase + 16) {
    uint8_t irq = static_cast<uint8_t>(f->vector - kPicVectorBase);
    __atomic_add_fetch(&irq_counts[irq], 1, __ATOMIC_RELAXED);
    if (irq_handlers[irq]) irq_handlers[irq]();
    pic_eoi(irq);
    return;
  }
  if (f->vector >= 0x30 && f->vector < 0xf0) {
    __atomic_add_fetch(&vector_counts[f->vector], 1, __ATOMIC_RELAXED);
    if (vector_handlers[f->vector]) vector_handlers[f->vector]();
    mmio_write32(0xfee000b0, 0);  // local APIC EOI
  }
}
