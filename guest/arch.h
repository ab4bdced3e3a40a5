// x86 instructions the guest uses, as inline functions.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace guest {

inline void outb(uint16_t port, uint8_t value) { asm volatile("outb %0, %1" ::"a"(value), "Nd"(port)); }
inline void outw(uint16_t port, uint16_t value) { asm volatile("outw %0, %1" ::"a"(value), "Nd"(port)); }
inline void outl(uint16_t port, uint32_t value) { asm volatile("outl %0, %1" ::"a"(value), "Nd"(port)); }
inline uint8_t inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline uint16_t inw(uint16_t port) {
  uint16_t v;
  asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline uint32_t inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

// String port I/O: `count` items at one port (rep ins/outs), as ATA's PIO data path uses it.
inline void outsw(uint16_t port, const void* items, uint64_t count) {
  asm volatile("rep outsw" : "+S"(items), "+c"(count) : "d"(port) : "memory");
}
inline void insw(uint16_t port, void* items, uint64_t count) {
  asm volatile("rep insw" : "+D"(items), "+c"(count) : "d"(port) : "memory");
}
inline void outsl(uint16_t port, const void* items, uint64_t count) {
  asm volatile("rep outsl" : "+S"(items), "+c"(count) : "d"(port) : "memory");
}
inline void insl(uint16_t port, void* items, uint64_t count) {
  asm volatile("rep insl" : "+D"(items), "+c"(count) : "d"(port) : "memory");
}

inline uint32_t mmio_read32(uint64_t addr) { return *reinterpret_cast<volatile uint32_t*>(addr); }
inline void mmio_write32(uint64_t addr, uint32_t v) { *reinterpret_cast<volatile uint32_t*>(addr) = v; }

inline uint64_t rdtsc() {
  uint32_t lo, hi;
  asm volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
  return (uint64_t(hi) << 32) | lo;
}

inline void pause() { asm volatile("pause" ::: "memory"); }

struct CpuidResult {
  uint32_t eax, ebx, ecx, edx;
};
inline CpuidResult cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  CpuidResult r;
  asm volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx) : "a"(leaf), "c"(subleaf));
  return r;
}

// This CPU's APIC ID, from its local APIC's ID register. Not from CPUID: on PVM hosts CPUID
// at CPL3 is not intercepted and reports the host CPU's APIC ID.
inline uint32_t apic_id() { return mmio_read32(0xfee00020) >> 24; }

}  // namespace guest
