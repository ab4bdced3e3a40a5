// Memory balloon scenarios on a virtio-balloon device. The pages given away come from RAM
// above the guest's image, which the guest does not otherwise use.
//   balloon[=sync][,huge]   touch the device's target of pages, inflate them, deflate them: pages
//                           that come back read zero (the host freed them) and work again; a
//                           free page report; statistics. With sync, the guest waits for a line
//                           on COM1 after "BH-READY balloon-touched" and "-inflated" (the host
//                           measures guest RAM). With huge (RAM in 2 MiB pages), only whole
//                           2 MiB pages are expected back.
//   balloon-hostile         page numbers outside RAM, repeated, far too many, and malformed
//                           buffers; then the device must still work
//   bench-balloon=MIB       time to inflate and deflate MIB of touched memory
//   fill=MIB                writes MIB of free RAM with the same pattern in every VM (KSM's
//                           chance to merge; no balloon needed)
//   balloon-cycle=ROUNDS    inflates and deflates 16 MiB per round while the host kills the
//                           device's process: every page must come back zeroed
//   balloon-probe=SECONDS   restart latency: inflates and deflates one page again and again and
//                           reports every request that took 2 ms or more ("BH-STALL balloon
//                           us=N"); bench/restart_latency.py --device balloon kills bh-balloon
//   balloon-follow=CHANGES  follows the device's target (`bulkhead ctl balloon`) through CHANGES
//                           changes, as Linux's driver does: inflates or deflates to it, sets
//                           actual; pages that come back must read zero and work again. Hands the
//                           device one set of statistics first (swap-in=7, free=the pool)
#include <string.h>

#include "arch.h"
#include "console.h"
#include "drivers/uart16550.h"
#include "drivers/virtio_balloon.h"
#include "dma.h"
#include "probe.h"
#include "scenario.h"

extern "C" uint8_t guest_image_end[];

namespace guest {

namespace {

constexpr uint64_t kPage = 4096, kHugePage = 2ull << 20;

// RAM above the image, in whole 2 MiB pages, that nothing else uses.
struct Pool {
  uint64_t base = 0, size = 0;
  uint32_t pfn(uint64_t i) const { return static_cast<uint32_t>((base >> 12) + i); }
  uint64_t pages() const { return size / kPage; }
};

Pool free_pool(const BootInfo& boot) {
  uint64_t start = (reinterpret_cast<uint64_t>(guest_image_end) + kHugePage - 1) & ~(kHugePage - 1);
  Pool pool;
  for (int i = 0; i < boot.range_count; ++i) {
    const MemoryRange& r = boot.ranges[i];
    if (r.type != 1 || start < r.base || start >= r.base + r.size) continue;
    uint64_t end = (r.base + r.size) & ~(kHugePage - 1);
    if (end > start) pool = {start, end - start};
  }
  return pool;
}

volatile uint64_t* page_word(const Pool& pool, uint64_t i) { return reinterpret_cast<volatile uint64_t*>(pool.base + i * kPage); }

// A word in every page, different per page: writing it makes the host allocate the page.
void touch(const Pool& pool, uint64_t first, uint64_t count) {
  for (uint64_t i = first; i < first + count; ++i) *page_word(pool, i) = 0xb0a1100000000000ull | i;
}

void list_pfns(const Pool& pool, uint64_t first, uint64_t count, uint32_t* out) {
  for (uint64_t i = 0; i < count; ++i) out[i] = pool.pfn(first + i);
}

// Standard statistics (virtio 1.x, 5.5.6.3) with made-up but plausible values.
void give_stats(VirtioBalloonDriver& balloon, uint64_t ram, uint64_t free, uint32_t round) {
  VirtioBalloonDriver::Stat stats[] = {{0, round}, {1, 0}, {2, 1}, {3, 100 + round}, {4, free}, {5, ram},
                                       {6, free}, {7, 4096}, {8, 0}, {9, 0}};
  balloon.give_stats(stats, sizeof stats / sizeof stats[0]);
}

// Prints the marker, then waits for a line on COM1, answering the device's requests for
// statistics meanwhile; returns how many it answered.
uint32_t sync_with_host(const char* marker, VirtioBalloonDriver& balloon, uint64_t ram, uint64_t free, uint32_t* round) {
  Uart16550 com1(Uart16550::kCom1);
  print("BH-READY %s\n", marker);
  uint32_t refreshed = 0;
  for (;;) {
    if (balloon.stats_requested()) {
      give_stats(balloon, ram, free, ++*round);
      ++refreshed;
    }
    if (!(com1.read(Uart16550::kLsr) & Uart16550::kLsrDataReady)) {
      pause();
      continue;
    }
    char c = static_cast<char>(com1.read(Uart16550::kRbrThr));
    if (c == '\n' || c == '\r') return refreshed;
  }
}

bool has_word(const char* arg, const char* word) {
  size_t n = strlen(word);
  for (const char* p = arg; *p;) {
    if (strncmp(p, word, n) == 0 && (p[n] == 0 || p[n] == ',')) return true;
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return false;
}

}  // namespace

bool scenario_balloon(const char* arg, Context& context) {
  VirtioBalloonDriver balloon;
  if (!balloon.init()) {
    print("BH-RESULT balloon error=no-device\n");
    return false;
  }
  const bool sync = has_word(arg, "sync"), huge = has_word(arg, "huge");
  Pool pool = free_pool(context.boot);
  uint64_t target = balloon.target_pages();
  Checks checks;
  checks.expect(target > 0, "target");
  // The reported range: 4 MiB after the ballooned pages, on 2 MiB boundaries.
  uint64_t report_first = ((target * kPage + kHugePage - 1) & ~(kHugePage - 1)) / kPage, report_pages = 1024;
  checks.expect(pool.pages() >= report_first + report_pages, "pool-too-small");
  if (!checks.ok) {
    print("BH-RESULT balloon target=%lu pool_pages=%lu error=%s\n", target, pool.pages(), checks.first_failure);
    return false;
  }
  uint64_t ram = 0;
  for (int i = 0; i < context.boot.range_count; ++i)
    if (context.boot.ranges[i].type == 1) ram += context.boot.ranges[i].size;
  uint32_t round = 0, refreshed = 0;
  give_stats(balloon, ram, pool.size, round);

  touch(pool, 0, target);
  if (sync) refreshed += sync_with_host("balloon-touched", balloon, ram, pool.size, &round);
  auto* pfns = static_cast<uint32_t*>(dma_alloc(target * sizeof(uint32_t), 64));
  list_pfns(pool, 0, target, pfns);
  checks.expect(balloon.inflate(pfns, static_cast<uint32_t>(target)), "inflate");
  balloon.set_actual_pages(static_cast<uint32_t>(target));
  checks.expect(balloon.actual_pages() == target, "actual");
  if (sync) refreshed += sync_with_host("balloon-inflated", balloon, ram, pool.size - target * kPage, &round);
  checks.expect(balloon.deflate(pfns, static_cast<uint32_t>(target)), "deflate");
  balloon.set_actual_pages(0);

  // Pages the host freed read zero; with 2 MiB backing, only the whole 2 MiB pages.
  uint64_t zeroed = 0, expected_zeroed = huge ? target / 512 * 512 : target;
  for (uint64_t i = 0; i < target; ++i) zeroed += *page_word(pool, i) == 0;
  checks.expect(zeroed == expected_zeroed, "returned-pages");
  touch(pool, 0, target);
  uint64_t verified = 0;
  for (uint64_t i = 0; i < target; ++i) verified += *page_word(pool, i) == (0xb0a1100000000000ull | i);
  checks.expect(verified == target, "reuse");

  // Free page reporting: reported pages go back to the host too.
  uint64_t reported_zero = 0;
  if (balloon.features() & VirtioBalloonDriver::kReporting) {
    touch(pool, report_first, report_pages);
    checks.expect(balloon.report_free(pool.base + report_first * kPage, report_pages * kPage), "report");
    for (uint64_t i = report_first; i < report_first + report_pages; ++i) reported_zero += *page_word(pool, i) == 0;
    checks.expect(reported_zero == report_pages, "reported-pages");
  }
  print("BH-RESULT balloon target=%lu zeroed=%lu verified=%lu reported_zero=%lu stats_refreshed=%u features=%lx "
        "result=%s\n",
        target, zeroed, verified, reported_zero, refreshed, balloon.features(), checks.ok ? "ok" : checks.first_failure);
  return checks.ok;
}

bool scenario_balloon_hostile(const char*, Context& context) {
  VirtioBalloonDriver balloon;
  if (!balloon.init()) {
    print("BH-RESULT balloon-hostile error=no-device\n");
    return false;
  }
  Pool pool = free_pool(context.boot);
  Checks checks;
  // Outside RAM: past its end, the PCI hole, the last page number there is.
  uint32_t outside[] = {static_cast<uint32_t>((pool.base + pool.size + (64ull << 20)) >> 12), 0xc0000, 0xfee00, 0xffffffff};
  checks.expect(balloon.inflate(outside, 4), "outside-ram");
  // The same page three times, and a page never inflated deflated.
  uint32_t same[] = {pool.pfn(0), pool.pfn(0), pool.pfn(0)};
  checks.expect(balloon.inflate(same, 3), "repeated");
  uint32_t never[] = {pool.pfn(7)};
  checks.expect(balloon.deflate(never, 1), "not-inflated");
  // Far more page numbers than a buffer may hold: 2 MiB of them (all the same page).
  auto* many = static_cast<uint32_t*>(dma_alloc(2 << 20, 4096));
  for (uint32_t i = 0; i < (2u << 20) / 4; ++i) many[i] = pool.pfn(1);
  Segment huge{many, 2u << 20, false};
  checks.expect(balloon.send_raw(VirtioBalloonDriver::kInflateQueue, &huge, 1), "too-many");
  // Malformed: a buffer the device would write, a partial page number; statistics with a tag
  // from the future (the device keeps that buffer until it wants fresh values).
  Segment writable{many, 64, true}, partial{many, 5, false};
  checks.expect(balloon.send_raw(VirtioBalloonDriver::kInflateQueue, &writable, 1), "writable");
  checks.expect(balloon.send_raw(VirtioBalloonDriver::kInflateQueue, &partial, 1), "partial");
  VirtioBalloonDriver::Stat unknown[] = {{0xffff, 1}, {4, 123}};
  checks.expect(!(balloon.features() & VirtioBalloonDriver::kStatsVq) || balloon.give_stats(unknown, 2), "stats");
  // Still working: a page in and out, and it comes back zeroed.
  touch(pool, 2, 1);
  uint32_t one[] = {pool.pfn(2)};
  checks.expect(balloon.inflate(one, 1) && balloon.deflate(one, 1), "still-works");
  checks.expect(*page_word(pool, 2) == 0, "still-returns");
  print("BH-RESULT balloon-hostile result=%s\n", checks.ok ? "ok" : checks.first_failure);
  return checks.ok;
}

// Each round touches the pages, inflates and deflates them: a page that does not read zero
// afterwards was in an inflate request that got lost (a restarted process must redo what
// its predecessor left in flight); then the pages must work again.
bool scenario_balloon_cycle(const char* arg, Context& context) {
  VirtioBalloonDriver balloon;
  if (!balloon.init()) {
    print("BH-RESULT balloon-cycle error=no-device\n");
    return false;
  }
  Pool pool = free_pool(context.boot);
  uint64_t pages = pool.pages() < 4096 ? pool.pages() : 4096;
  uint32_t rounds = static_cast<uint32_t>(parse_number(arg, 100));
  auto* pfns = static_cast<uint32_t*>(dma_alloc(pages * sizeof(uint32_t), 64));
  list_pfns(pool, 0, pages, pfns);
  uint64_t not_returned = 0, broken = 0, refused = 0;
  for (uint32_t round = 1; round <= rounds; ++round) {
    touch(pool, 0, pages);
    refused += !balloon.inflate(pfns, static_cast<uint32_t>(pages));
    refused += !balloon.deflate(pfns, static_cast<uint32_t>(pages));
    for (uint64_t i = 0; i < pages; ++i) not_returned += *page_word(pool, i) != 0;
    touch(pool, 0, pages);
    for (uint64_t i = 0; i < pages; ++i) broken += *page_word(pool, i) != (0xb0a1100000000000ull | i);
    print("BH-PROGRESS balloon-cycle round=%u\n", round);
  }
  bool ok = not_returned == 0 && broken == 0 && refused == 0;
  print("BH-RESULT balloon-cycle %s rounds=%u pages=%lu not_returned=%lu broken=%lu refused=%lu\n", ok ? "ok" : "failed",
        rounds, pages, not_returned, broken, refused);
  return ok;
}

bool scenario_balloon_probe(const char* arg, Context& context) {
  VirtioBalloonDriver balloon;
  if (!balloon.init()) {
    print("BH-RESULT balloon-probe error=no-device\n");
    return false;
  }
  uint32_t pfn = free_pool(context.boot).pfn(0);
  return probe_stalls("balloon", arg, context,
                      [&](uint64_t i) { return i % 2 == 0 ? balloon.inflate(&pfn, 1) : balloon.deflate(&pfn, 1); });
}

bool scenario_balloon_follow(const char* arg, Context& context) {
  VirtioBalloonDriver balloon;
  if (!balloon.init()) {
    print("BH-RESULT balloon-follow error=no-device\n");
    return false;
  }
  Pool pool = free_pool(context.boot);
  auto* pfns = static_cast<uint32_t*>(dma_alloc(pool.pages() * sizeof(uint32_t), 64));
  list_pfns(pool, 0, pool.pages(), pfns);
  uint32_t changes = static_cast<uint32_t>(parse_number(arg, 2)), held = 0, seen = balloon.target_pages();
  uint64_t not_returned = 0, broken = 0, refused = 0, beyond_pool = 0;
  give_stats(balloon, pool.size * 2, pool.size, 7);
  print("BH-READY balloon-follow pages=%u pool=%lu\n", seen, pool.pages());
  for (uint32_t change = 0; change <= changes;) {
    uint32_t target = balloon.target_pages();
    if (target > pool.pages()) {
      ++beyond_pool;  // this guest gives only its free pool; a larger target is followed in part
      target = static_cast<uint32_t>(pool.pages());
    }
    if (target > held) {
      touch(pool, held, target - held);
      refused += !balloon.inflate(pfns + held, target - held);
    } else if (target < held) {
      refused += !balloon.deflate(pfns + target, held - target);
      for (uint64_t i = target; i < held; ++i) not_returned += *page_word(pool, i) != 0;
      touch(pool, target, held - target);
      for (uint64_t i = target; i < held; ++i) broken += *page_word(pool, i) != (0xb0a1100000000000ull | i);
    }
    if (target != held || change == 0) {
      held = target;
      balloon.set_actual_pages(held);
      print("BH-PROGRESS balloon-follow change=%u pages=%u\n", change, held);
      ++change;
    }
    for (int spin = 0; spin < 100000; ++spin) pause();  // polls num_pages about every millisecond
  }
  bool ok = not_returned == 0 && broken == 0 && refused == 0 && beyond_pool == 0;
  print("BH-RESULT balloon-follow %s changes=%u pages=%u not_returned=%lu broken=%lu refused=%lu beyond_pool=%lu\n",
        ok ? "ok" : "failed", changes, held, not_returned, broken, refused, beyond_pool);
  return ok;
}

bool scenario_bench_balloon(const char* arg, Context& context) {
  VirtioBalloonDriver balloon;
  if (!balloon.init()) {
    print("BH-RESULT bench-balloon error=no-device\n");
    return false;
  }
  Pool pool = free_pool(context.boot);
  uint64_t pages = parse_number(arg, 64) << 20 >> 12;
  if (pages > pool.pages()) {
    print("BH-RESULT bench-balloon error=pool-too-small pool_mib=%lu\n", pool.size >> 20);
    return false;
  }
  auto* pfns = static_cast<uint32_t*>(dma_alloc(pages * sizeof(uint32_t), 64));
  list_pfns(pool, 0, pages, pfns);
  touch(pool, 0, pages);
  uint64_t t0 = rdtsc();
  bool ok = balloon.inflate(pfns, static_cast<uint32_t>(pages));
  uint64_t t1 = rdtsc();
  ok &= balloon.deflate(pfns, static_cast<uint32_t>(pages));
  uint64_t t2 = rdtsc();
  uint64_t inflate_us = (t1 - t0) / context.tsc_per_us, deflate_us = (t2 - t1) / context.tsc_per_us;
  print("BH-RESULT bench-balloon mib=%lu inflate_us=%lu deflate_us=%lu result=%s\n", pages * kPage >> 20, inflate_us,
        deflate_us, ok ? "ok" : "failed");
  return ok;
}

bool scenario_fill(const char* arg, Context& context) {
  Pool pool = free_pool(context.boot);
  uint64_t pages = parse_number(arg, 32) << 20 >> 12;
  if (pages > pool.pages()) pages = pool.pages();
  touch(pool, 0, pages);
  print("BH-RESULT fill mib=%lu\n", pages * kPage >> 20);
  return true;
}

}  // namespace guest
