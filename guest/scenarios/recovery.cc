// Crash-recovery workloads: I/O that verifies itself while the host test kills the device
// process again and again. The guest must see delays, never an error, a lost or corrupted
// acknowledged write, or a request completed twice.
#include <string.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "dma.h"
#include "drivers/virtio_scsi.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint32_t kBlock = 512;
constexpr uint32_t kRequestBlocks = 8;  // 4 KiB per request
constexpr uint16_t kDepth = 16;         // requests in flight at once
constexpr uint32_t kRegionRequests = 256;
constexpr uint64_t kReportedStallUs = 2000;

uint8_t pattern(uint64_t lba, uint32_t offset, uint32_t round) {
  return static_cast<uint8_t>(lba * 131 + offset * 7 + round * 29 + 0x42);
}

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24), p[1] = static_cast<uint8_t>(v >> 16), p[2] = static_cast<uint8_t>(v >> 8),
  p[3] = static_cast<uint8_t>(v);
}

struct Tally {
  uint64_t requests = 0, errors = 0, duplicates = 0, mismatches = 0, stalls = 0, max_stall_us = 0;
};

// Runs `count` requests (write or read of request i at lba_of(i)), kDepth at a time, and
// checks each completion: a known slot, good status, and for reads the round's pattern.
class Workload {
 public:
  Workload(VirtioScsiDriver& scsi, uint64_t tsc_per_us) : scsi_(scsi), tsc_per_us_(tsc_per_us) {
    for (uint16_t s = 0; s < kDepth; ++s) buffers_[s] = static_cast<uint8_t*>(dma_alloc(kRequestBlocks * kBlock, 512));
  }

  void run(bool write, uint32_t round, uint64_t first_lba, Tally& tally) {
    uint32_t next = 0, done = 0;
    bool busy[kDepth] = {};
    uint32_t request_of[kDepth] = {};
    uint64_t last_progress = rdtsc();
    while (done < kRegionRequests) {
      for (uint16_t s = 0; s < kDepth && next < kRegionRequests; ++s) {
        if (busy[s]) continue;
        uint64_t lba = first_lba + uint64_t{next} * kRequestBlocks;
        if (write)
          for (uint32_t i = 0; i < kRequestBlocks * kBlock; ++i) buffers_[s][i] = pattern(lba + i / kBlock, i % kBlock, round);
        else
          memset(buffers_[s], 0, kRequestBlocks * kBlock);
        uint8_t cdb[10] = {static_cast<uint8_t>(write ? 0x2a : 0x28)};
        put_be32(cdb + 2, static_cast<uint32_t>(lba));
        cdb[8] = kRequestBlocks;
        Segment seg{buffers_[s], kRequestBlocks * kBlock, !write};
        if (!scsi_.submit(cdb, 10, &seg, 1, 0, s)) break;
        busy[s] = true;
        request_of[s] = next++;
      }
      uint16_t slot;
      VirtioScsiDriver::Result result;
      if (!scsi_.reap(&slot, &result)) {
        pause();
        continue;
      }
      note_progress(last_progress, tally);
      ++tally.requests;
      if (slot >= kDepth || !busy[slot]) {
        ++tally.duplicates;
        continue;
      }
      busy[slot] = false;
      ++done;
      if (result.response != 0 || result.status != 0) {
        ++tally.errors;
        continue;
      }
      if (write) continue;
      uint64_t lba = first_lba + uint64_t{request_of[slot]} * kRequestBlocks;
      for (uint32_t i = 0; i < kRequestBlocks * kBlock; ++i)
        if (buffers_[slot][i] != pattern(lba + i / kBlock, i % kBlock, round)) {
          ++tally.mismatches;
          break;
        }
    }
  }

  // Not timed: a flush waits for the host's disk, not for the device process.
  void flush(Tally& tally) {
    uint8_t sync[10] = {0x35};
    VirtioScsiDriver::Result r = scsi_.command(sync, 10);
    ++tally.requests;
    if (r.response != 0 || r.status != 0) ++tally.errors;
  }

 private:
  // A wait this long between completions is a device restart (or a very slow host).
  void note_progress(uint64_t& last, Tally& tally) {
    uint64_t now = rdtsc();
    uint64_t waited_us = (now - last) / tsc_per_us_;
    last = now;
    if (waited_us > tally.max_stall_us) tally.max_stall_us = waited_us;
    if (waited_us >= kReportedStallUs) {
      ++tally.stalls;
      print("BH-STALL scsi us=%lu\n", static_cast<unsigned long>(waited_us));
    }
  }

  VirtioScsiDriver& scsi_;
  uint64_t tsc_per_us_;
  uint8_t* buffers_[kDepth];
};

}  // namespace

// scsi-verify=ROUNDS: each round writes 1 MiB as 256 requests, 16 in flight, with a pattern
// of its own, flushes, and reads it back; the host test kills bh-scsi meanwhile.
bool scenario_scsi_verify(const char* arg, Context& context) {
  VirtioScsiDriver scsi;
  if (!scsi.init()) return print("BH-RESULT scsi-verify error=no-device\n"), false;
  uint32_t rounds = static_cast<uint32_t>(parse_number(arg, 20));
  Workload work(scsi, context.tsc_per_us);
  Tally tally;
  for (uint32_t round = 1; round <= rounds; ++round) {
    uint64_t first_lba = uint64_t{round % 8} * kRegionRequests * kRequestBlocks;
    work.run(true, round, first_lba, tally);
    work.flush(tally);
    work.run(false, round, first_lba, tally);
    print("BH-PROGRESS scsi-verify round=%u\n", round);
  }
  bool ok = tally.errors == 0 && tally.duplicates == 0 && tally.mismatches == 0;
  print("BH-RESULT scsi-verify %s rounds=%u requests=%lu errors=%lu duplicates=%lu mismatches=%lu stalls=%lu "
        "max-stall-us=%lu\n",
        ok ? "ok" : "failed", rounds, static_cast<unsigned long>(tally.requests), static_cast<unsigned long>(tally.errors),
        static_cast<unsigned long>(tally.duplicates), static_cast<unsigned long>(tally.mismatches),
        static_cast<unsigned long>(tally.stalls), static_cast<unsigned long>(tally.max_stall_us));
  return ok;
}

}  // namespace guest
