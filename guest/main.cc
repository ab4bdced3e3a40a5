// The test guest: boots at CPL0 just long enough to set up the CPU, then runs the scenarios
// named on its command line at CPL3 and exits through the debug-exit port.
#include "arch.h"
#include "boot_info.h"
#include "console.h"
#include "cpu.h"
#include "drivers/lapic.h"
#include "drivers/pic.h"
#include "scenario.h"
#include "timing.h"

extern "C" uint32_t pvh_start_info;

namespace guest {

namespace {

constexpr Scenario kScenarios[] = {
    {"hello", scenario_hello},   {"echo", scenario_echo},           {"serial-irq", scenario_serial_irq},
    {"smp", scenario_smp},       {"bench-uart", scenario_bench_uart}, {"bench-exit", scenario_bench_exit},
    {"flood", scenario_flood},           {"scsi-disk", scenario_scsi_disk},   {"scsi-irq", scenario_scsi_irq},
    {"msix-mask", scenario_msix_mask},   {"scratch", scenario_scratch},
    {"blk-disk", scenario_blk_disk},     {"bench-scsi", scenario_bench_scsi}, {"bench-blk", scenario_bench_blk},
    {"net", scenario_net},               {"net-hostile", scenario_net_hostile}, {"bench-net", scenario_bench_net},
    {"e1000", scenario_e1000},           {"e1000-hostile", scenario_e1000_hostile}, {"bench-e1000", scenario_bench_e1000},
    {"ide", scenario_ide},               {"ide-hostile", scenario_ide_hostile},
    {"bench-ide", scenario_bench_ide},         {"ide-verify", scenario_ide_verify},
    {"ide-probe", scenario_ide_probe},
    {"balloon", scenario_balloon},       {"balloon-hostile", scenario_balloon_hostile},
    {"bench-balloon", scenario_bench_balloon}, {"idle", scenario_idle}, {"serial-probe", scenario_serial_probe},
    {"fill", scenario_fill},             {"scsi-verify", scenario_scsi_verify},
    {"net-verify", scenario_net_verify},     {"balloon-cycle", scenario_balloon_cycle},
    {"balloon-follow", scenario_balloon_follow}, {"balloon-probe", scenario_balloon_probe},
};
constexpr const char* kDefaultScenarios = "hello smp";
constexpr uint8_t kStatusFailed = 3;

// Copies the next space-separated token of `*cursor` into `token`; false at the end.
bool next_token(const char** cursor, char* token, int size) {
  const char* p = *cursor;
  while (*p == ' ') ++p;
  if (!*p) return false;
  int n = 0;
  while (*p && *p != ' ') {
    if (n < size - 1) token[n++] = *p;
    ++p;
  }
  token[n] = 0;
  *cursor = p;
  return true;
}

// "name" or "name=arg": returns the argument ("" for none) or nullptr if it is not `name`.
const char* match(const char* token, const char* name) {
  int i = 0;
  while (name[i] && token[i] == name[i]) ++i;
  if (name[i]) return nullptr;
  if (token[i] == 0) return token + i;
  return token[i] == '=' ? token + i + 1 : nullptr;
}

int run_scenarios(const char* list, Context& context, int* exit_override) {
  char token[128];
  int ran = 0, failed = 0;
  for (const char* cursor = list; next_token(&cursor, token, sizeof token);) {
    if (const char* arg = match(token, "exit")) {
      *exit_override = static_cast<int>(parse_number(arg, 0) & 0xff);
      continue;
    }
    for (const Scenario& s : kScenarios) {
      const char* arg = match(token, s.name);
      if (!arg) continue;
      ++ran;
      if (!s.run(arg, context)) {
        ++failed;
        print("BH-FAIL %s\n", s.name);
      }
    }
  }
  return ran == 0 ? -1 : failed;
}

void user_main(uint64_t) {
  console_init();
  BootInfo boot = read_boot_info(pvh_start_info);
  print("\nBH-BOOT bulkhead-test-guest cmdline=\"%s\"\n", boot.cmdline);
  lapic_enable(true);
  Context context{boot, tsc_ticks_per_us()};
  int exit_override = -1;
  int failed = run_scenarios(boot.cmdline, context, &exit_override);
  if (failed < 0) failed = run_scenarios(kDefaultScenarios, context, &exit_override);
  int status = failed ? kStatusFailed : (exit_override >= 0 ? exit_override : 0);
  print("BH-DONE status=%d\n", status);
  exit_guest(static_cast<uint8_t>(status));
}

}  // namespace

uint64_t parse_number(const char* s, uint64_t fallback) {
  if (!s || !*s) return fallback;
  uint64_t v = 0;
  for (; *s; ++s) {
    if (*s < '0' || *s > '9') return fallback;
    v = v * 10 + (*s - '0');
  }
  return v;
}

}  // namespace guest

// Called from boot.S on the BSP, at CPL0.
extern "C" [[noreturn]] void kernel_main(int cpu) {
  guest::cpu_init(cpu);
  // Firmware (SeaBIOS) may leave the 8259 delivering IRQ 0 on vector 8 (#DF): remap and mask
  // it before user mode turns interrupts on.
  guest::pic_init();
  guest::enter_user(cpu, guest::user_main, 0);
}
