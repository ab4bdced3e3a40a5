// Serial port scenarios: echo in both directions (polling) and interrupt-driven transfer.
#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "drivers/pic.h"
#include "drivers/uart16550.h"
#include "probe.h"
#include "scenario.h"

namespace guest {

namespace {

Uart16550 com1(Uart16550::kCom1);

// Filled by the COM1 interrupt handler (CPL0), read with atomics by the scenario (CPL3).
int thre_interrupts;
int rx_interrupts;
char rx_line[128];
int rx_length;
int rx_line_done;

int load(const int* v) { return __atomic_load_n(v, __ATOMIC_ACQUIRE); }
void bump(int* v) { __atomic_add_fetch(v, 1, __ATOMIC_RELEASE); }

void com1_interrupt() {
  for (;;) {
    uint8_t iir = com1.read(Uart16550::kIirFcr);
    if (iir & Uart16550::kIirNoInterrupt) break;
    switch (iir & Uart16550::kIirIdMask) {
      case Uart16550::kIirThrEmpty:
        bump(&thre_interrupts);
        com1.write(Uart16550::kIer, com1.read(Uart16550::kIer) & ~Uart16550::kIerThrEmpty);
        break;
      case Uart16550::kIirRxData:
      case Uart16550::kIirRxTimeout:
        bump(&rx_interrupts);
        while (com1.read(Uart16550::kLsr) & Uart16550::kLsrDataReady) {
          char c = static_cast<char>(com1.read(Uart16550::kRbrThr));
          if (c == '\n' || c == '\r') __atomic_store_n(&rx_line_done, rx_length > 0, __ATOMIC_RELEASE);
          else if (rx_length < static_cast<int>(sizeof rx_line) - 1) rx_line[rx_length++] = c;
        }
        break;
      default:
        com1.read(Uart16550::kLsr);
        com1.read(Uart16550::kMsr);
    }
  }
}

// Waits until *counter >= n or `us` microseconds pass.
bool wait_for(const int* counter, int n, uint64_t us, uint64_t tsc_per_us) {
  uint64_t end = rdtsc() + us * tsc_per_us;
  while (load(counter) < n && rdtsc() < end) pause();
  return load(counter) >= n;
}

}  // namespace

bool scenario_echo(const char*, Context&) {
  print("BH-READY echo\n");
  char line[128];
  int n = 0;
  for (;;) {
    char c = static_cast<char>(com1.get());
    if (c == '\n' || c == '\r') {
      if (n) break;
      continue;
    }
    if (n < static_cast<int>(sizeof line) - 1) line[n++] = c;
  }
  line[n] = 0;
  print("BH-ECHO %s\n", line);
  return true;
}

bool scenario_serial_irq(const char*, Context& context) {
  set_irq_handler(Uart16550::kIrqCom1, com1_interrupt);
  pic_unmask(Uart16550::kIrqCom1);  // RFLAGS.IF is already set at CPL3 (see enter_user_mode)

  // Transmitter-empty interrupt: the THR is empty, so enabling it must interrupt at once.
  com1.write(Uart16550::kIer, Uart16550::kIerThrEmpty);
  bool thre_ok = wait_for(&thre_interrupts, 1, 5'000'000, context.tsc_per_us);

  // Receive interrupts: the host sends a line after our READY marker.
  rx_length = 0;
  __atomic_store_n(&rx_line_done, 0, __ATOMIC_RELEASE);
  com1.write(Uart16550::kIer, Uart16550::kIerRxData);
  print("BH-READY serial-irq\n");
  bool rx_ok = wait_for(&rx_line_done, 1, 60'000'000, context.tsc_per_us);
  com1.write(Uart16550::kIer, 0);
  pic_mask(Uart16550::kIrqCom1);
  rx_line[rx_length] = 0;
  print("BH-RESULT serial-irq thre_irqs=%d rx_irqs=%d rx=%s irq4_total=%lu\n", load(&thre_interrupts), load(&rx_interrupts),
        rx_line, irq_count(Uart16550::kIrqCom1));
  return thre_ok && rx_ok;
}

// Prints `n` numbered 64-byte lines as fast as the UART takes them: the host checks that
// none is lost or damaged however slowly it reads.
bool scenario_flood(const char* arg, Context&) {
  uint64_t n = parse_number(arg, 1000);
  for (uint64_t i = 0; i < n; ++i) print("BH-FLOOD %08lu abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNO\n", i);
  print("BH-RESULT flood lines=%lu\n", n);
  return true;
}

// Restart latency of the serial port: a scratch-register read (~0.1 ms) is the access.
bool scenario_serial_probe(const char* arg, Context& context) {
  return probe_stalls("serial", arg, context, [](uint64_t) {
    com1.read(Uart16550::kScr);
    return true;
  });
}

// Reports nanoseconds per access for `n` reads and `n` writes done by the two functions.
template <typename Read, typename Write>
void time_accesses(uint64_t n, uint64_t tsc_per_us, uint64_t* read_ns, uint64_t* write_ns, Read read, Write write) {
  uint64_t t0 = rdtsc();
  for (uint64_t i = 0; i < n; ++i) read();
  uint64_t t1 = rdtsc();
  for (uint64_t i = 0; i < n; ++i) write(static_cast<uint8_t>(i));
  uint64_t t2 = rdtsc();
  *read_ns = (t1 - t0) * 1000 / tsc_per_us / n;
  *write_ns = (t2 - t1) * 1000 / tsc_per_us / n;
}

// The floor: accesses to a port no device claims, which the VMM answers itself.
bool scenario_bench_exit(const char* arg, Context& context) {
  constexpr uint16_t kUnclaimedPort = 0x2ff;  // COM2's scratch register; COM2 is absent
  uint64_t n = parse_number(arg, 10000), read_ns, write_ns;
  time_accesses(n, context.tsc_per_us, &read_ns, &write_ns, [] { inb(kUnclaimedPort); },
                [](uint8_t v) { outb(kUnclaimedPort, v); });
  print("BH-RESULT bench-exit iterations=%lu read_ns=%lu write_ns=%lu\n", n, read_ns, write_ns);
  return true;
}

bool scenario_bench_uart(const char* arg, Context& context) {
  uint64_t n = parse_number(arg, 10000), read_ns, write_ns;
  com1.write(Uart16550::kIer, 0);
  time_accesses(n, context.tsc_per_us, &read_ns, &write_ns, [] { com1.read(Uart16550::kLsr); },
                [](uint8_t v) { com1.write(Uart16550::kScr, v); });
  bool ok = com1.read(Uart16550::kScr) == static_cast<uint8_t>(n - 1);
  print("BH-RESULT bench-uart iterations=%lu lsr_read_ns=%lu scr_write_ns=%lu scratch=%s\n", n, read_ns, write_ns,
        ok ? "ok" : "wrong");
  return ok;
}

}  // namespace guest
