// Output on COM1 and the end of the run.
#pragma once

#include <stdarg.h>
#include <stdint.h>

namespace guest {

void console_init();
// printf subset: %s %c %d %u %x %lu %ld %lx %llu %llx %p, width for numbers (e.g. %08x).
void print(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
// Like print, without taking the console lock: for fault handlers only.
void print_unlocked(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
int format(char* out, int size, const char* fmt, va_list args);
int snprint(char* out, int size, const char* fmt, ...) __attribute__((format(printf, 3, 4)));

// Ends the VM through the debug-exit port (QEMU: isa-debug-exit at 0xf4).
[[noreturn]] void exit_guest(uint8_t status);

}  // namespace guest
