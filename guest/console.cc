#include "console.h"

#include "arch.h"
#include "drivers/uart16550.h"
#include "spinlock.h"

namespace guest {

namespace {
constexpr uint16_t kDebugExitPort = 0xf4;
Uart16550 com1(Uart16550::kCom1);
SpinLock console_lock;

void emit(const char* s, int n) {
  for (int i = 0; i < n; ++i) {
    if (s[i] == '\n') com1.put('\r');
    com1.put(s[i]);
  }
}

int append_number(char* out, int pos, int size, uint64_t value, int base, int width, char pad, bool negative) {
  char digits[24];
  int n = 0;
  do {
    int d = static_cast<int>(value % base);
    digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
    value /= base;
  } while (value);
  if (negative) digits[n++] = '-';
  while (n < width && n < 24) digits[n++] = pad;
  while (n--)
    if (pos < size - 1) out[pos++] = digits[n];
  return pos;
}

void vprint(bool locked, const char* fmt, va_list args) {
  char buffer[256];
  int n = format(buffer, sizeof buffer, fmt, args);
  if (locked) console_lock.lock();
  emit(buffer, n);
  if (locked) console_lock.unlock();
}
}  // namespace

void console_init() { com1.init(); }

int format(char* out, int size, const char* fmt, va_list args) {
  int pos = 0;
  for (const char* p = fmt; *p; ++p) {
    if (*p != '%') {
      if (pos < size - 1) out[pos++] = *p;
      continue;
    }
    ++p;
    char pad = ' ';
    int width = 0;
    if (*p == '0') pad = '0';
    while (*p >= '0' && *p <= '9') width = width * 10 + (*p++ - '0');
    int longs = 0;
    while (*p == 'l') ++longs, ++p;
    switch (*p) {
      case 's': {
        const char* s = va_arg(args, const char*);
        if (!s) s = "(null)";
        while (*s)
          if (pos < size - 1) out[pos++] = *s++;
          else ++s;
        break;
      }
      case 'c':
        if (pos < size - 1) out[pos++] = static_cast<char>(va_arg(args, int));
        break;
      case 'd': {
        int64_t v = longs ? va_arg(args, int64_t) : va_arg(args, int);
        pos = append_number(out, pos, size, v < 0 ? -static_cast<uint64_t>(v) : v, 10, width, pad, v < 0);
        break;
      }
      case 'u':
      case 'x': {
        uint64_t v = longs ? va_arg(args, uint64_t) : va_arg(args, unsigned);
        pos = append_number(out, pos, size, v, *p == 'u' ? 10 : 16, width, pad, false);
        break;
      }
      case 'p':
        pos = append_number(out, pos, size, reinterpret_cast<uint64_t>(va_arg(args, void*)), 16, 0, ' ', false);
        break;
      default:
        if (pos < size - 1) out[pos++] = *p;
        if (!*p) --p;
    }
  }
  out[pos] = 0;
  return pos;
}

int snprint(char* out, int size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int n = format(out, size, fmt, args);
  va_end(args);
  return n;
}

void print(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vprint(true, fmt, args);
  va_end(args);
}

void print_unlocked(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vprint(false, fmt, args);
  va_end(args);
}

void exit_guest(uint8_t status) {
  outl(kDebugExitPort, status);
  // Only reached if no debug-exit device exists: stop here.
  for (;;) pause();
}

}  // namespace guest
