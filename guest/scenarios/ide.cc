// IDE scenarios: the PIIX3 controller (device-procs/ide) as ata_piix drives it, and QEMU's IDE
// bugs done on purpose.
//   ide          every drive found (IDENTIFY / IDENTIFY PACKET); on the first disk PIO (16- and
//                32-bit, MULTIPLE), DMA (PRD pieces of 4 KiB and 64 KiB), LBA48 beyond 128 GiB when
//                the disk is that large, VERIFY, FLUSH, IRQ 14/15; on the CD-ROM its whole
//                medium by PIO and by DMA, with checksums
//   ide-hostile  short and unreadable PRD tables, buffers outside RAM, DMA without bus mastering
//                or in the wrong direction, a reset during DMA, stray data-port accesses,
//                overlong PIO writes, out-of-range addresses and CD reads, disk commands to the
//                CD-ROM, odd ATAPI byte counts; then a normal read
//   bench-ide    register access cost, PIO and DMA throughput (bench/ide_vs_qemu.py)
//   ide-verify=ROUNDS  crash recovery: each round writes 272 KiB with a pattern of its own (DMA,
//                then 16 KiB by PIO MULTIPLE: KVM exits once per item of a `rep outs`), flushes,
//                and reads it back both ways; the host test kills bh-ide meanwhile
//                (tests/integration/recovery_test.cc)
//   ide-probe=SECONDS  restart latency: reads the primary channel's sector count register, an
//                access bh-ide must answer, and reports every wait of 2 ms or more
//                ("BH-STALL ide us=N"); bench/restart_latency.py --device ide kills bh-ide meanwhile
#include <string.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "dma.h"
#include "drivers/ide.h"
#include "drivers/pic.h"
#include "probe.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint64_t kPioLba = 2048, kDmaLba = 4096, kLba48 = 0x10000010;

// The bytes the scenario writes; the host test checks them in the image.
uint8_t pattern(uint64_t sector, uint32_t i) { return static_cast<uint8_t>(sector * 131 + i * 7 + 0x5a); }
void fill(uint8_t* p, uint64_t lba, uint32_t sectors) {
  for (uint32_t s = 0; s < sectors; ++s)
    for (uint32_t i = 0; i < 512; ++i) p[s * 512 + i] = pattern(lba + s, i);
}
bool matches(const uint8_t* p, uint64_t lba, uint32_t sectors) {
  for (uint32_t s = 0; s < sectors; ++s)
    for (uint32_t i = 0; i < 512; ++i)
      if (p[s * 512 + i] != pattern(lba + s, i)) return false;
  return true;
}
uint32_t fnv1a(uint32_t h, const uint8_t* p, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}
void model_of(const uint16_t* id, char* out) {
  for (int i = 0; i < 20; ++i) {
    out[2 * i] = static_cast<char>(id[27 + i] >> 8);
    out[2 * i + 1] = static_cast<char>(id[27 + i]);
  }
  int n = 40;
  while (n > 0 && out[n - 1] == ' ') --n;
  out[n] = 0;
}

struct Drives {
  int disk = -1, cdrom = -1, disks = 0, cdroms = 0;
  uint64_t sectors = 0;
};

Drives probe(IdeDriver& ide) {
  Drives found;
  uint16_t* id = static_cast<uint16_t*>(dma_alloc(512, 16));
  for (int d = 0; d < 4; ++d) {
    ide.select(d);
    char model[41];
    if (ide.identify(id, false).ok) {
      model_of(id, model);
      uint64_t sectors = 0;
      for (int w = 3; w >= 0; --w) sectors = sectors << 16 | id[100 + w];
      print("BH-RESULT ide-drive position=%d type=ata model=%s sectors=%lu lba48=%d\n", d, model, sectors,
            (id[83] >> 10) & 1);
      if (found.disk < 0) {
        found.disk = d;
        found.sectors = sectors;
      }
      ++found.disks;
    } else if (ide.identify(id, true).ok) {
      model_of(id, model);
      print("BH-RESULT ide-drive position=%d type=atapi model=%s config=%04x\n", d, model, id[0]);
      if (found.cdrom < 0) found.cdrom = d;
      ++found.cdroms;
    }
  }
  return found;
}

const char* verdict(bool ok) { return ok ? "ok" : "FAILED"; }

bool disk_checks(IdeDriver& ide, const Drives& drives) {
  ide.select(drives.disk);
  const uint32_t kBig = 256;  // sectors: 128 KiB
  uint8_t* buffer = static_cast<uint8_t*>(dma_alloc(kBig * 512, 65536));
  // PIO: written with 16-bit strings, read back with 32-bit ones; then by MULTIPLE.
  fill(buffer, kPioLba, 16);
  bool pio = ide.pio(true, kPioLba, 16, buffer, false, false, false).ok;
  memset(buffer, 0, 16 * 512);
  pio = pio && ide.pio(false, kPioLba, 16, buffer, false, false, true).ok && matches(buffer, kPioLba, 16);
  bool multiple = ide.non_data(0xc6, 0, 16).ok;  // SET MULTIPLE MODE: 16 sectors per block
  memset(buffer, 0, 16 * 512);
  multiple = multiple && ide.pio(false, kPioLba, 16, buffer, false, true, false).ok && matches(buffer, kPioLba, 16);
  // DMA: 128 KiB in 4 KiB pieces, read back in 64 KiB pieces, then by PIO.
  fill(buffer, kDmaLba, kBig);
  bool dma = ide.dma(true, kDmaLba, kBig, buffer, false, 4096).ok;
  memset(buffer, 0, kBig * 512);
  dma = dma && ide.dma(false, kDmaLba, kBig, buffer, false).ok && matches(buffer, kDmaLba, kBig);
  memset(buffer, 0, 32 * 512);
  dma = dma && ide.pio(false, kDmaLba, 32, buffer, false, true, true).ok && matches(buffer, kDmaLba, 32);
  // 48-bit commands, beyond what 28 bits address when the disk is that large.
  const char* lba48 = "skipped";
  bool lba48_ok = true;
  if (drives.sectors > kLba48 + 64) {
    fill(buffer, kLba48, 8);
    bool ok = ide.dma(true, kLba48, 8, buffer, true).ok;
    memset(buffer, 0, 8 * 512);
    ok = ok && ide.pio(false, kLba48, 8, buffer, true, false, false).ok && matches(buffer, kLba48, 8);
    lba48 = verdict(ok);
    lba48_ok = ok;
  }
  bool verify = ide.non_data(0x40, 0, 8).ok;
  bool flush = ide.non_data(0xe7).ok && ide.non_data(0xea).ok;
  bool power = ide.non_data(0xe5).ok && inb(static_cast<uint16_t>(ide.command_port() + 2)) == 0xff;
  print("BH-RESULT ide pio=%s multiple=%s dma=%s lba48=%s verify=%s flush=%s power=%s\n", verdict(pio),
        verdict(multiple), verdict(dma), lba48, verdict(verify), verdict(flush), verdict(power));
  return pio && multiple && dma && lba48_ok && verify && flush && power;
}

bool cdrom_checks(IdeDriver& ide, const Drives& drives) {
  ide.select(drives.cdrom);
  uint8_t* buffer = static_cast<uint8_t*>(dma_alloc(65536, 65536));
  uint32_t got = 0;
  const uint8_t tur[12] = {0x00};
  ide.packet(tur, buffer, 0, false, 0, &got);  // a unit attention, if any, is reported once
  const uint8_t capacity[12] = {0x25};
  bool ok = ide.packet(capacity, buffer, 8, false, 8, &got).ok && got == 8;
  const uint32_t blocks = (static_cast<uint32_t>(buffer[0]) << 24 | buffer[1] << 16 | buffer[2] << 8 | buffer[3]) + 1;
  const uint8_t inquiry[12] = {0x12, 0, 0, 0, 36};
  ok = ok && ide.packet(inquiry, buffer, 36, false, 36, &got).ok && buffer[0] == 0x05 && (buffer[1] & 0x80);
  const uint8_t toc[12] = {0x43, 0, 0, 0, 0, 0, 0, 0, 100};
  bool toc_ok = ide.packet(toc, buffer, 100, false, 100, &got).ok && got == 20 && buffer[3] == 1;
  // The whole medium, 16 blocks a packet: by PIO (in 8 KiB DRQ blocks), then by DMA.
  uint32_t sum_pio = 2166136261u, sum_dma = 2166136261u;
  bool pio_ok = true, dma_ok = true;
  for (uint32_t lba = 0; lba < blocks; lba += 16) {
    const uint32_t n = blocks - lba < 16 ? blocks - lba : 16;
    const uint8_t read10[12] = {0x28, 0, static_cast<uint8_t>(lba >> 24), static_cast<uint8_t>(lba >> 16),
                                static_cast<uint8_t>(lba >> 8), static_cast<uint8_t>(lba), 0, 0, static_cast<uint8_t>(n)};
    pio_ok = pio_ok && ide.packet(read10, buffer, n * 2048, false, 8192, &got).ok && got == n * 2048;
    sum_pio = fnv1a(sum_pio, buffer, n * 2048);
    dma_ok = dma_ok && ide.packet(read10, buffer, n * 2048, true, 0, &got).ok;
    sum_dma = fnv1a(sum_dma, buffer, n * 2048);
  }
  print("BH-RESULT ide-cdrom blocks=%u inquiry=%s toc=%s pio=%s dma=%s fnv_pio=%08x fnv_dma=%08x\n", blocks,
        verdict(ok), verdict(toc_ok), verdict(pio_ok), verdict(dma_ok), sum_pio, sum_dma);
  return ok && toc_ok && pio_ok && dma_ok && sum_pio == sum_dma;
}

}  // namespace

bool scenario_ide(const char*, Context&) {
  IdeDriver ide;
  if (!ide.init()) {
    print("BH-RESULT ide error=no-controller\n");
    return false;
  }
  pic_unmask(2);  // the cascade to the second 8259
  pic_unmask(14);
  pic_unmask(15);
  Drives drives = probe(ide);
  bool ok = true;
  if (drives.disk >= 0) ok = disk_checks(ide, drives) && ok;
  if (drives.cdrom >= 0) ok = cdrom_checks(ide, drives) && ok;
  print("BH-RESULT ide-summary disks=%d cdroms=%d irq14=%lu irq15=%lu\n", drives.disks, drives.cdroms, irq_count(14),
        irq_count(15));
  return ok;
}

bool scenario_ide_hostile(const char*, Context&) {
  IdeDriver ide;
  if (!ide.init()) return false;
  Drives drives = probe(ide);
  if (drives.disk < 0) return false;
  ide.select(drives.disk);
  uint8_t* buffer = static_cast<uint8_t*>(dma_alloc(256 * 512, 65536));
  auto* table = static_cast<IdeDriver::Prd*>(dma_alloc(64, 64));
  const uint32_t table_address = static_cast<uint32_t>(phys(table));

  // CVE-2014-9718: a PRD table that covers less than the transfer (2 bytes for a sector).
  table[0] = {static_cast<uint32_t>(phys(buffer)), 2 | 0x80000000u};
  IdeDriver::Result r = ide.dma_raw(false, 0, 1, table_address, false);
  const bool short_prd = !r.ok && (r.bm_status & 0x02);
  // The table itself, and then a buffer, where there is no RAM: the PCI hole, the IOAPIC.
  r = ide.dma_raw(false, 0, 1, 0xe0000000u, false);
  const bool table_outside = !r.ok;
  table[0] = {0xfec00000u, 512 | 0x80000000u};
  r = ide.dma_raw(false, 0, 1, table_address, false);
  const bool buffer_mmio = !r.ok;
  // No bus mastering; then the engine set for the other direction.
  ide.set_bus_master(false);
  r = ide.dma(false, 0, 1, buffer, false);
  const bool no_master = !r.ok;
  ide.set_bus_master(true);
  table[0] = {static_cast<uint32_t>(phys(buffer)), 512 | 0x80000000u};
  outb(ide.bm_port(), 0);
  outl(static_cast<uint16_t>(ide.bm_port() + 4), table_address);
  ide.issue(0xc8, 0, 1);  // READ DMA ...
  outb(ide.bm_port(), 0x01);                                    // ... with the engine reading memory
  ide.wait_ready();
  const bool wrong_direction = (ide.status() & 0x01) != 0;
  outb(ide.bm_port(), 0);
  // A reset while a DMA transfer runs (CVE-2016-1568's class: the request must die cleanly).
  table[0] = {static_cast<uint32_t>(phys(buffer)), 0 | 0x80000000u};  // 0: 64 KiB
  outb(ide.bm_port(), 0);
  outl(static_cast<uint16_t>(ide.bm_port() + 4), table_address);
  ide.issue(0xc8, 0, 128);
  outb(ide.bm_port(), 0x09);
  ide.soft_reset();
  outb(ide.bm_port(), 0);
  ide.select(drives.disk);
  const bool reset_dma = ide.pio(false, 0, 1, buffer, false, false, false).ok;
  // Data-port accesses with no transfer, and more data than a write asked for.
  for (int i = 0; i < 1000; ++i) (void)inw(ide.command_port());
  for (int i = 0; i < 1000; ++i) outw(ide.command_port(), 0xdead);
  fill(buffer, 8, 2);
  ide.issue(0x30, 8, 1);  // WRITE SECTORS
  ide.wait_ready();
  outsw(ide.command_port(), buffer, 512);  // two sectors' worth for a one-sector write
  ide.wait_ready();
  memset(buffer, 0, 1024);
  const bool overlong = ide.pio(false, 8, 2, buffer, false, false, false).ok && matches(buffer, 8, 1) &&
                        !matches(buffer + 512, 9, 1);
  // Out of range, unknown commands, a bad multiple count.
  r = ide.pio(false, drives.sectors, 1, buffer, true, false, false);
  const bool idnf = !r.ok && (r.error & 0x10);
  const bool abrt = !ide.non_data(0xff).ok && !ide.non_data(0x00).ok && !ide.non_data(0xc6, 0, 3).ok &&
                    (ide.non_data(0xef, 0x77).error & 0x04);
  // The CD-ROM: a read past its end, disk commands (CVE-2015-6855), an odd byte count limit.
  const char* cd_range = "skipped";
  const char* cd_disk_command = "skipped";
  const char* cd_odd = "skipped";
  if (drives.cdrom >= 0) {
    ide.select(drives.cdrom);
    uint32_t got;
    const uint8_t tur[12] = {0x00};
    ide.packet(tur, buffer, 0, false, 0, &got);
    const uint8_t past_end[12] = {0x28, 0, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0x20};
    r = ide.packet(past_end, buffer, 0x10000, false, 0xfffe, &got);
    const uint8_t request_sense[12] = {0x03, 0, 0, 0, 18};
    bool sensed = ide.packet(request_sense, buffer, 18, false, 18, &got).ok && buffer[2] == 0x05 && buffer[12] == 0x21;
    cd_range = verdict(!r.ok && (r.error >> 4) == 0x05 && sensed);
    cd_disk_command = verdict(!ide.non_data(0xf8).ok && !ide.non_data(0xc8).ok && !ide.non_data(0xec).ok);
    const uint8_t inquiry[12] = {0x12, 0, 0, 0, 36};
    cd_odd = verdict(ide.packet(inquiry, buffer, 36, false, 1, &got).ok && got == 36 && buffer[0] == 0x05);
    ide.select(drives.disk);
  }
  const bool responsive = ide.pio(false, kPioLba, 1, buffer, false, false, false).ok;
  print("BH-RESULT ide-hostile short_prd=%s table_outside=%s buffer_mmio=%s no_master=%s wrong_direction=%s "
        "reset_dma=%s overlong=%s idnf=%s abrt=%s cd_range=%s cd_disk_command=%s cd_odd=%s responsive=%d\n",
        verdict(short_prd), verdict(table_outside), verdict(buffer_mmio), verdict(no_master), verdict(wrong_direction),
        verdict(reset_dma), verdict(overlong), verdict(idnf), verdict(abrt), cd_range, cd_disk_command, cd_odd,
        responsive);
  return responsive;
}

}  // namespace guest

namespace guest {

// bench-ide[=SCALE]: the cost of one register access (the alternate status register, read
// 20000 times), then sequential reads by PIO (READ MULTIPLE with 32-bit strings) and reads
// and writes by DMA, 128 KiB a command, over the first disk (at least 64 MiB).
bool scenario_bench_ide(const char* arg, Context& context) {
  const uint64_t scale = parse_number(arg, 1);
  IdeDriver ide;
  if (!ide.init()) return false;
  Drives drives = probe(ide);
  if (drives.disk < 0 || drives.sectors < (64u << 20) / 512) return false;
  ide.select(drives.disk);
  const uint64_t per_us = context.tsc_per_us;
  constexpr uint32_t kSectors = 256;
  uint8_t* buffer = static_cast<uint8_t*>(dma_alloc(kSectors * 512, 65536));

  const uint64_t reads = 20000;
  uint64_t start = rdtsc();
  for (uint64_t i = 0; i < reads; ++i) (void)inb(ide.control_port());
  const uint64_t access_ns = (rdtsc() - start) * 1000 / per_us / reads;

  auto mbps = [&](bool dma, bool write, uint64_t megabytes) {
    const uint64_t commands = megabytes * 1024 * 1024 / (kSectors * 512);
    uint64_t t0 = rdtsc();
    for (uint64_t c = 0; c < commands; ++c) {
      const uint64_t lba = (c * kSectors) % (drives.sectors - kSectors);
      bool ok = dma ? ide.dma(write, lba, kSectors, buffer, false).ok
                    : ide.pio(write, lba, kSectors, buffer, false, true, true).ok;
      if (!ok) return uint64_t{0};
    }
    const uint64_t us = (rdtsc() - t0) / per_us;
    return us ? megabytes * 1000000 / us : 0;
  };
  if (!ide.non_data(0xc6, 0, 16).ok) return false;  // SET MULTIPLE MODE: 16 sectors per block
  const uint64_t pio_read = mbps(false, false, 16 * scale);
  const uint64_t dma_read = mbps(true, false, 64 * scale);
  const uint64_t dma_write = mbps(true, true, 64 * scale);
  print("BH-RESULT bench-ide access_ns=%lu pio_read_mbps=%lu dma_read_mbps=%lu dma_write_mbps=%lu\n", access_ns,
        pio_read, dma_read, dma_write);
  return pio_read && dma_read && dma_write;
}

bool scenario_ide_probe(const char* arg, Context& context) {
  IdeDriver ide;
  if (!ide.init()) return print("BH-RESULT ide-probe error=no-controller\n"), false;
  ide.select(0);
  return probe_stalls("ide", arg, context, [&](uint64_t) {
    inb(static_cast<uint16_t>(ide.command_port() + 2));  // the sector count register
    return true;
  });
}

bool scenario_ide_verify(const char* arg, Context&) {
  IdeDriver ide;
  if (!ide.init()) return print("BH-RESULT ide-verify error=no-controller\n"), false;
  ide.select(0);
  if (!ide.identify(static_cast<uint16_t*>(dma_alloc(512, 16)), false).ok)
    return print("BH-RESULT ide-verify error=no-disk\n"), false;
  if (!ide.non_data(0xc6, 0, 16).ok) return print("BH-RESULT ide-verify error=set-multiple\n"), false;
  constexpr uint32_t kDmaSectors = 128, kDmaCommands = 4, kPioSectors = 32, kRegion = 1024;
  uint8_t* buffer = static_cast<uint8_t*>(dma_alloc(kDmaSectors * 512, 65536));
  const uint32_t rounds = static_cast<uint32_t>(parse_number(arg, 20));
  uint64_t commands = 0, errors = 0, mismatches = 0;
  // The round's pattern: a sector read back from an earlier round (or from nowhere) differs.
  auto fill_round = [&](uint64_t lba, uint32_t sectors, uint32_t round) {
    for (uint32_t i = 0; i < sectors * 512; ++i) buffer[i] = static_cast<uint8_t>(pattern(lba + i / 512, i % 512) + round * 29);
  };
  auto check_round = [&](uint64_t lba, uint32_t sectors, uint32_t round) {
    for (uint32_t i = 0; i < sectors * 512; ++i)
      if (buffer[i] != static_cast<uint8_t>(pattern(lba + i / 512, i % 512) + round * 29)) {
        ++mismatches;
        return;
      }
  };
  auto counted = [&](IdeDriver::Result r) {
    ++commands;
    if (!r.ok) ++errors;
  };
  for (uint32_t round = 1; round <= rounds; ++round) {
    const uint64_t base = uint64_t{round % 8} * kRegion, pio_lba = base + kDmaSectors * kDmaCommands;
    for (uint32_t c = 0; c < kDmaCommands; ++c) {
      fill_round(base + c * kDmaSectors, kDmaSectors, round);
      counted(ide.dma(true, base + c * kDmaSectors, kDmaSectors, buffer, false, 4096));
    }
    fill_round(pio_lba, kPioSectors, round);
    counted(ide.pio(true, pio_lba, kPioSectors, buffer, false, true, true));
    counted(ide.non_data(0xe7));  // FLUSH CACHE
    for (uint32_t c = 0; c < kDmaCommands; ++c) {
      memset(buffer, 0, kDmaSectors * 512);
      counted(ide.dma(false, base + c * kDmaSectors, kDmaSectors, buffer, false));
      check_round(base + c * kDmaSectors, kDmaSectors, round);
    }
    memset(buffer, 0, kPioSectors * 512);
    counted(ide.pio(false, pio_lba, kPioSectors, buffer, false, true, true));
    check_round(pio_lba, kPioSectors, round);
    print("BH-PROGRESS ide-verify round=%u\n", round);
  }
  const bool ok = errors == 0 && mismatches == 0;
  print("BH-RESULT ide-verify %s rounds=%u commands=%lu errors=%lu mismatches=%lu\n", ok ? "ok" : "failed", rounds,
        static_cast<unsigned long>(commands), static_cast<unsigned long>(errors), static_cast<unsigned long>(mismatches));
  return ok;
}

}  // namespace guest
