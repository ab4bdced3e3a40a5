/* PVH entry, the switch to long mode, the AP start-up trampoline and interrupt stubs.
 * Everything here runs at CPL0, which this host emulates slowly: keep it short. */
#include "layout.h"

/* The PVH note: a loader enters pvh_entry32 in 32-bit protected mode, paging off,
 * with %ebx pointing at hvm_start_info. */
.section .note.pvh, "a"
.balign 4
.long 4                 /* name size: "Xen\0" */
.long 8                 /* descriptor size: 64-bit ELF loaders read 8 bytes */
.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
.asciz "Xen"
.quad pvh_entry32

/* Turns on PAE paging and long mode; ends with a far jump to \target (64-bit code). */
.macro ENTER_LONG_MODE target
  mov %cr4, %eax
  or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
  mov %eax, %cr4
  mov $pml4, %eax
  mov %eax, %cr3
  mov $MSR_EFER, %ecx
  rdmsr
  or $EFER_LME, %eax
  wrmsr
  mov $(CR0_PG | CR0_NE | CR0_ET | CR0_MP | CR0_PE), %eax
  mov %eax, %cr0
  ljmp $KERNEL_CS, $\target
.endm

.section .text.boot, "ax"
.code32
.globl pvh_entry32
pvh_entry32:
  cli
  cld
  mov %ebx, pvh_start_info
  lgdt gdt_descriptor
  mov $KERNEL_DS, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  ENTER_LONG_MODE bsp_long_mode

.code64
bsp_long_mode:
  mov $KERNEL_DS, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  xor %eax, %eax
  mov %eax, %fs
  mov %eax, %gs
  lea kernel_stacks + GUEST_KERNEL_STACK_SIZE(%rip), %rsp
  xor %edi, %edi
  call kernel_main
1: hlt
  jmp 1b

ap_long_mode:
  mov $KERNEL_DS, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  xor %eax, %eax
  mov %eax, %fs
  mov %eax, %gs
  mov $1, %eax
  lock xadd %eax, next_cpu_index(%rip)
  cmp $GUEST_MAX_CPUS, %eax
  jae 2f
  mov %eax, %edi
  lea 1(%rax), %rcx
  imul $GUEST_KERNEL_STACK_SIZE, %rcx
  lea kernel_stacks(%rip), %rsp
  add %rcx, %rsp
  call ap_main
2: cli
  hlt
  jmp 2b

/* Copied to AP_TRAMPOLINE_ADDR; an AP starts here in real mode with %cs = 0x0800. */
.code16
.globl ap_trampoline_start, ap_trampoline_end
ap_trampoline_start:
  cli
  cld
  mov %cs, %ax
  mov %ax, %ds
  lgdtl (trampoline_gdt_descriptor - ap_trampoline_start)
  mov %cr0, %eax
  or $CR0_PE, %eax
  mov %eax, %cr0
  ljmpl $KERNEL_CS32, $(AP_TRAMPOLINE_ADDR + trampoline32 - ap_trampoline_start)
.code32
trampoline32:
  mov $KERNEL_DS, %eax
  mov %eax, %ds
  mov %eax, %es
  mov %eax, %ss
  ENTER_LONG_MODE ap_long_mode
.balign 8
trampoline_gdt_descriptor:
  .word gdt_end - gdt - 1
  .long gdt
ap_trampoline_end:

/* Interrupt entry: 256 stubs, 16 bytes apart, each pushing a uniform frame
 * (error code or 0, then the vector) before isr_common. */
.code64
.section .text
.balign 16
.globl isr_stubs
isr_stubs:
.set vec, 0
.rept 256
  .balign 16
  .if !((vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30))
  pushq $0
  .endif
  pushq $vec
  jmp isr_common
  .set vec, vec + 1
.endr

isr_common:
  push %rax
  push %rbx
  push %rcx
  push %rdx
  push %rsi
  push %rdi
  push %rbp
  push %r8
  push %r9
  push %r10
  push %r11
  push %r12
  push %r13
  push %r14
  push %r15
  mov %rsp, %rdi
  call isr_dispatch
  pop %r15
  pop %r14
  pop %r13
  pop %r12
  pop %r11
  pop %r10
  pop %r9
  pop %r8
  pop %rbp
  pop %rdi
  pop %rsi
  pop %rdx
  pop %rcx
  pop %rbx
  pop %rax
  add $16, %rsp
  iretq

/* halt_until() (cpu.h): the #UD handler recognises this ud2, halts, and resumes after it. */
.section .text
.globl halt_trap_call, halt_trap
halt_trap_call:
halt_trap:
  ud2
  ret

/* Drops to CPL3: enter_user_mode(entry, user_stack_top, arg). */
.section .text
.globl enter_user_mode
enter_user_mode:
  mov %rdi, %rax
  mov %rdx, %rdi
  pushq $USER_DS
  pushq %rsi
  pushq $0x202          /* IF=1, IOPL=0: port access comes from the TSS bitmap */
  pushq $USER_CS
  pushq %rax
  mov $USER_DS, %ecx
  mov %ecx, %ds
  mov %ecx, %es
  iretq

.section .data
.balign 4
.globl pvh_start_info
pvh_start_info: .long 0
next_cpu_index: .long 1

.balign 16
.globl gdt, gdt_tss_descriptors
gdt:
  .quad 0
  .quad 0x00af9a000000ffff   /* KERNEL_CS: 64-bit code, DPL0 */
  .quad 0x00cf92000000ffff   /* KERNEL_DS */
  .quad 0x00cf9a000000ffff   /* KERNEL_CS32: for the AP trampoline */
  .quad 0x00cff2000000ffff   /* USER_DS: DPL3 */
  .quad 0x00affa000000ffff   /* USER_CS: 64-bit code, DPL3 */
gdt_tss_descriptors:
  .fill GUEST_MAX_CPUS * 2, 8, 0
gdt_end:

gdt_descriptor:
  .word gdt_end - gdt - 1
  .quad gdt

/* Identity map of the first 16 GiB with user-accessible 2 MiB pages, built at link time so
 * the emulated CPL0 start-up has nothing to compute. (Firmware may put 64-bit PCI BARs
 * above 4 GiB.) */
#define IDENTITY_GIB 16
.balign 4096
pml4:
  .quad pdpt + 0x7
  .fill 511, 8, 0
pdpt:
.set gib, 0
.rept IDENTITY_GIB
  .quad pd + (gib << 12) + 0x7
  .set gib, gib + 1
.endr
  .fill 512 - IDENTITY_GIB, 8, 0
pd:
.set page, 0
.rept 512 * IDENTITY_GIB
  .quad (page << 21) | 0x87   /* present, writable, user, 2 MiB */
  .set page, page + 1
.endr

.section .bss
.balign 4096
.globl kernel_stacks
kernel_stacks:
  .space GUEST_MAX_CPUS * GUEST_KERNEL_STACK_SIZE
