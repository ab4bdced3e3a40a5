// A scenario is one test the guest can run, selected by a command-line token
// ("name" or "name=arg"). It prints "BH-RESULT name key=value..." lines and returns pass/fail.
#pragma once

#include <stdint.h>

#include "boot_info.h"

namespace guest {

struct Context {
  const BootInfo& boot;
  uint64_t tsc_per_us;
};

struct Scenario {
  const char* name;
  bool (*run)(const char* arg, Context& context);
};

// A scenario's checks: all must hold; the first that failed names the result.
struct Checks {
  bool ok = true;
  const char* first_failure = "none";
  void expect(bool condition, const char* what) {
    if (!condition && ok) first_failure = what;
    ok &= condition;
  }
};

// Parses a decimal number; returns `fallback` for an empty or malformed string.
uint64_t parse_number(const char* s, uint64_t fallback);

bool scenario_hello(const char* arg, Context& context);
bool scenario_echo(const char* arg, Context& context);
bool scenario_serial_irq(const char* arg, Context& context);
bool scenario_smp(const char* arg, Context& context);
bool scenario_bench_uart(const char* arg, Context& context);
bool scenario_serial_probe(const char* arg, Context& context);
bool scenario_bench_exit(const char* arg, Context& context);
bool scenario_flood(const char* arg, Context& context);
bool scenario_scsi_disk(const char* arg, Context& context);
bool scenario_scsi_irq(const char* arg, Context& context);
bool scenario_msix_mask(const char* arg, Context& context);
bool scenario_scratch(const char* arg, Context& context);
bool scenario_blk_disk(const char* arg, Context& context);
bool scenario_bench_scsi(const char* arg, Context& context);
bool scenario_bench_blk(const char* arg, Context& context);
bool scenario_net(const char* arg, Context& context);
bool scenario_net_hostile(const char* arg, Context& context);
bool scenario_bench_net(const char* arg, Context& context);
bool scenario_e1000(const char* arg, Context& context);
bool scenario_e1000_hostile(const char* arg, Context& context);
bool scenario_bench_e1000(const char* arg, Context& context);
bool scenario_ide(const char* arg, Context& context);
bool scenario_ide_hostile(const char* arg, Context& context);
bool scenario_bench_ide(const char* arg, Context& context);
bool scenario_ide_probe(const char* arg, Context& context);
bool scenario_ide_verify(const char* arg, Context& context);
bool scenario_balloon(const char* arg, Context& context);
bool scenario_balloon_hostile(const char* arg, Context& context);
bool scenario_bench_balloon(const char* arg, Context& context);
bool scenario_idle(const char* arg, Context& context);
bool scenario_scsi_verify(const char* arg, Context& context);
bool scenario_net_verify(const char* arg, Context& context);
bool scenario_balloon_cycle(const char* arg, Context& context);
bool scenario_balloon_follow(const char* arg, Context& context);
bool scenario_balloon_probe(const char* arg, Context& context);
bool scenario_fill(const char* arg, Context& context);

}  // namespace guest
