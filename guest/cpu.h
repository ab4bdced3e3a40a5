// Per-CPU protected-mode state (IDT, TSS with an all-ports I/O bitmap) and interrupts.
#pragma once

#include <stdint.h>

#include "layout.h"

namespace guest {

struct InterruptFrame {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
  uint64_t vector, error_code;
  uint64_t rip, cs, rflags, rsp, ss;
};

using IrqHandler = void (*)();

// CPL0: loads the IDT and this CPU's TSS. The BSP (cpu 0) also builds the IDT.
void cpu_init(int cpu);
// CPL0: continues at `entry(arg)` at CPL3 on this CPU's user stack. Never returns.
[[noreturn]] void enter_user(int cpu, void (*entry)(uint64_t), uint64_t arg);

// Vector base the 8259 PIC is programmed to.
inline constexpr uint8_t kPicVectorBase = 0x20;
// Runs at CPL0 when ISA `irq` fires; the PIC gets its EOI afterwards.
void set_irq_handler(uint8_t irq, IrqHandler handler);
uint64_t irq_count(uint8_t irq);
// Runs at CPL0 for a local-APIC vector (0x30-0xef, e.g. an MSI); the APIC gets its EOI after.
void set_vector_handler(uint8_t vector, IrqHandler handler);
uint64_t vector_count(uint8_t vector);
// CPL3: halts this CPU, as an idle OS does, until local-APIC `vector` has been taken `count`
// times in all (interrupts are handled meanwhile). hlt is privileged and PVM passes neither
// `int n` nor `syscall` from CPL3 to the guest, so this enters CPL0 through #UD (a ud2 at a
// known address) and halts there, in one entry for the whole wait.
void halt_until(uint8_t vector, uint64_t count);

}  // namespace guest
