/* Constants shared by the guest's assembly and C++ code. */
#pragma once

#define GUEST_MAX_CPUS 64
#define GUEST_KERNEL_STACK_SIZE 8192
#define GUEST_USER_STACK_SIZE 16384

/* GDT selectors. */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define KERNEL_CS32 0x18
#define USER_DS 0x23
#define USER_CS 0x2b
#define FIRST_TSS_SELECTOR 0x30

/* Real-mode address the AP start-up code is copied to (SIPI vector 0x08). */
#define AP_TRAMPOLINE_ADDR 0x8000

#define CR0_PE 0x1
#define CR0_MP 0x2
#define CR0_ET 0x10
#define CR0_NE 0x20
#define CR0_PG 0x80000000
#define CR4_PAE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400
#define MSR_EFER 0xC0000080
#define EFER_LME 0x100
