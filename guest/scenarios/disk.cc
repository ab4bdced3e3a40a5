// Storage scenarios: a functional check of a virtio-scsi disk (and of a virtio-blk disk for
// third-party back-ends), an MSI-X interrupt check, and the I/O benchmark. The host test
// recomputes the same block pattern to check the image afterwards.
#include <string.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "dma.h"
#include "drivers/virtio_blk.h"
#include "drivers/virtio_scsi.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint32_t kBlock = 512;
constexpr int kPatternSites = 64;
constexpr uint32_t kSiteBlocks = 8;
constexpr uint8_t kMsixCpuVector = 0x50;

// The byte at `offset` of block `lba`; the host test computes the same.
uint8_t pattern(uint64_t lba, uint32_t offset) { return static_cast<uint8_t>(lba * 131 + offset * 7 + 0x42); }

void fill(uint8_t* buf, uint64_t lba, uint32_t blocks) {
  for (uint32_t b = 0; b < blocks; ++b)
    for (uint32_t i = 0; i < kBlock; ++i) buf[b * kBlock + i] = pattern(lba + b, i);
}

bool check(const uint8_t* buf, uint64_t lba, uint32_t blocks) {
  for (uint32_t b = 0; b < blocks; ++b)
    for (uint32_t i = 0; i < kBlock; ++i)
      if (buf[b * kBlock + i] != pattern(lba + b, i)) return false;
  return true;
}

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24), p[1] = static_cast<uint8_t>(v >> 16), p[2] = static_cast<uint8_t>(v >> 8),
  p[3] = static_cast<uint8_t>(v);
}
void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, static_cast<uint32_t>(v >> 32));
  put_be32(p + 4, static_cast<uint32_t>(v));
}
uint32_t be32(const uint8_t* p) { return static_cast<uint32_t>(p[0]) << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// READ/WRITE(10) below 2^32 blocks on even sites, (16) on odd ones.
int rw_cdb(uint8_t* cdb, bool write, uint64_t lba, uint32_t blocks, bool sixteen) {
  memset(cdb, 0, 16);
  if (sixteen) {
    cdb[0] = write ? 0x8a : 0x88;
    put_be64(cdb + 2, lba);
    put_be32(cdb + 10, blocks);
    return 16;
  }
  cdb[0] = write ? 0x2a : 0x28;
  put_be32(cdb + 2, static_cast<uint32_t>(lba));
  cdb[7] = static_cast<uint8_t>(blocks >> 8);
  cdb[8] = static_cast<uint8_t>(blocks);
  return 10;
}

// Splits `buf` into `n` segments of uneven, non-sector-aligned lengths.
int split(uint8_t* buf, uint32_t len, int n, bool device_writes, Segment* out) {
  uint32_t at = 0;
  for (int i = 0; i < n; ++i) {
    uint32_t piece = i + 1 == n ? len - at : (len / n) + (i % 2 ? 37 : -37);
    out[i] = {buf + at, piece, device_writes};
    at += piece;
  }
  return n;
}

uint64_t site_lba(int site, uint64_t blocks) {
  if (site == kPatternSites - 1) return blocks - kSiteBlocks;  // the very end of the disk
  return static_cast<uint64_t>(site) * (blocks / kPatternSites);
}

uint64_t xorshift(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

}  // namespace

bool scenario_scsi_disk(const char*, Context&) {
  VirtioScsiDriver scsi;
  if (!scsi.init()) {
    print("BH-RESULT scsi-disk error=no-device\n");
    return false;
  }
  Checks checks;
  auto* data = static_cast<uint8_t*>(dma_alloc(4096, 512));
  uint8_t inquiry[6] = {0x12, 0, 0, 0, 96, 0};
  Segment in_seg{data, 96, true};
  VirtioScsiDriver::Result r = scsi.command(inquiry, 6, &in_seg, 1);
  char vendor[9] = {}, product[17] = {};
  memcpy(vendor, data + 8, 8);
  memcpy(product, data + 16, 16);
  for (char* c = vendor; *c; ++c) if (*c == ' ') *c = '_';
  checks.expect(r.response == 0 && r.status == 0 && (data[0] & 0x1f) == 0, "inquiry");

  uint8_t tur[6] = {0};
  checks.expect(scsi.command(tur, 6).status == 0, "test-unit-ready");  // retried past a UNIT ATTENTION

  uint8_t rc16[16] = {0x9e, 0x10};
  rc16[13] = 32;
  Segment cap_seg{data, 32, true};
  r = scsi.command(rc16, 16, &cap_seg, 1);
  uint64_t blocks = ((static_cast<uint64_t>(be32(data)) << 32) | be32(data + 4)) + 1;
  uint32_t block_size = be32(data + 8);
  checks.expect(r.status == 0 && block_size == kBlock && blocks >= 1024, "read-capacity-16");

  // Write patterned sites: aligned single buffers, unaligned buffers split across several
  // descriptors, direct chains and indirect tables.
  constexpr uint32_t kBytes = kSiteBlocks * kBlock;
  auto* site_buf = static_cast<uint8_t*>(dma_alloc(kBytes + 64, 512));
  int written = 0, verified = 0;
  for (int site = 0; site < kPatternSites; ++site) {
    uint64_t lba = site_lba(site, blocks);
    uint8_t* buf = site % 2 ? site_buf + 3 : site_buf;  // odd sites: not even 4-byte aligned
    fill(buf, lba, kSiteBlocks);
    Segment segs[8];
    int n = site % 2 ? split(buf, kBytes, 3 + site % 5, false, segs) : (segs[0] = {buf, kBytes, false}, 1);
    uint8_t cdb[16];
    int len = rw_cdb(cdb, true, lba, kSiteBlocks, site % 2);
    r = scsi.command(cdb, len, segs, n, 0, site % 4 == 1);
    if (r.response == 0 && r.status == 0) ++written;
  }
  uint8_t sync[10] = {0x35};
  checks.expect(scsi.command(sync, 10).status == 0, "synchronize-cache");
  for (int site = 0; site < kPatternSites; ++site) {
    uint64_t lba = site_lba(site, blocks);
    uint8_t* buf = site % 3 ? site_buf + 5 : site_buf;
    memset(buf, 0, kBytes);
    Segment segs[8];
    int n = site % 3 ? split(buf, kBytes, 2 + site % 6, true, segs) : (segs[0] = {buf, kBytes, true}, 1);
    uint8_t cdb[16];
    int len = rw_cdb(cdb, false, lba, kSiteBlocks, site % 2 == 0);
    r = scsi.command(cdb, len, segs, n, 0, site % 4 == 3);
    if (r.response == 0 && r.status == 0 && check(buf, lba, kSiteBlocks)) ++verified;
  }
  checks.expect(written == kPatternSites && verified == kPatternSites, "patterns");

  // Errors come back as CHECK CONDITION with sense data.
  uint8_t cdb[16];
  Segment one{data, kBlock, true};
  int len = rw_cdb(cdb, false, blocks, 1, false);
  VirtioScsiDriver::Result oob = scsi.command(cdb, len, &one, 1);
  len = rw_cdb(cdb, true, blocks - 1, 2, true);
  Segment two{site_buf, 2 * kBlock, false};
  VirtioScsiDriver::Result oob_write = scsi.command(cdb, len, &two, 1);
  uint8_t bad[6] = {0xc7};
  VirtioScsiDriver::Result badop = scsi.command(bad, 6);
  checks.expect(oob.status == 2 && oob.sense_key == 5 && oob.asc == 0x21, "read-beyond-end-sense");
  checks.expect(oob_write.status == 2 && oob_write.asc == 0x21, "write-across-end-sense");
  checks.expect(badop.status == 2 && badop.sense_key == 5 && badop.asc == 0x20, "invalid-opcode-sense");
  len = rw_cdb(cdb, false, 0, 0, false);
  checks.ok &= scsi.command(cdb, len).status == 0;  // zero-length transfer

  uint8_t report_luns[12] = {0xa0};
  put_be32(report_luns + 6, 256);
  Segment luns_seg{data, 256, true};
  r = scsi.command(report_luns, 12, &luns_seg, 1);
  uint32_t luns = be32(data) / 8;
  checks.expect(r.status == 0 && luns >= 1, "report-luns");
  inquiry[4] = 36;
  Segment absent{data, 36, true};
  scsi.command(inquiry, 6, &absent, 1, 200);  // a LUN that is not there
  checks.expect(data[0] == 0x7f, "absent-lun-inquiry");

  // Task management on the control queue, and a command on every request queue.
  checks.expect(scsi.task_management(VirtioScsiDriver::kTmfLunReset, 0) == 0, "lun-reset");
  checks.expect(scsi.task_management(VirtioScsiDriver::kTmfAbortTask, 0) == 0, "abort-task");
  int queues_ok = 0;
  for (int q = 0; q < scsi.request_queues(); ++q) {
    uint64_t lba = site_lba(q, blocks);
    Segment seg{site_buf, kBytes, true};
    len = rw_cdb(cdb, false, lba, kSiteBlocks, false);
    VirtioScsiDriver::Result qr = scsi.command_on(q, cdb, len, &seg, 1);
    if (qr.response == 0 && qr.status == 0 && check(site_buf, lba, kSiteBlocks)) ++queues_ok;
  }
  checks.expect(queues_ok == scsi.request_queues(), "every-request-queue");

  print("BH-RESULT scsi-disk request_queues=%d vendor=%s blocks=%lu written=%d verified=%d oob=%u/%x/%u badop=%u/%x/%u luns=%u failed_check=\"%s\" %s\n",
        scsi.request_queues(), vendor, blocks, written, verified, oob.sense_key, oob.asc, oob.ascq, badop.sense_key, badop.asc, badop.ascq, luns,
        checks.first_failure, checks.ok ? "ok" : "FAILED");
  return checks.ok;
}

namespace {
uint64_t msix_interrupts;
void on_msix() { __atomic_add_fetch(&msix_interrupts, 1, __ATOMIC_RELAXED); }
constexpr uint8_t kMsixOtherCpuVector = 0x51;

uint64_t interrupts() { return __atomic_load_n(&msix_interrupts, __ATOMIC_RELAXED); }

// Waits up to `us` for `condition`.
template <typename F>
bool wait_until(F condition, uint64_t us, const Context& context) {
  uint64_t end = rdtsc() + us * context.tsc_per_us;
  while (!condition())
    if (rdtsc() > end) return false;
    else pause();
  return true;
}
}  // namespace

// Every completion must be announced by an MSI-X interrupt: the guest submits one command at
// a time and looks at the used ring only after an interrupt arrived. Interrupts that come
// before any command (a back-end may signal when its call eventfd is set) are not counted.
bool scenario_scsi_irq(const char* arg, Context& context) {
  set_vector_handler(kMsixCpuVector, on_msix);
  VirtioScsiDriver scsi;
  if (!scsi.init(0, kMsixCpuVector)) {
    print("BH-RESULT scsi-irq error=no-device\n");
    return false;
  }
  uint64_t settle = rdtsc() + 100'000 * context.tsc_per_us;
  while (rdtsc() < settle) pause();
  uint64_t before = __atomic_load_n(&msix_interrupts, __ATOMIC_RELAXED);
  int requests = static_cast<int>(parse_number(arg, 16)), announced = 0;
  uint8_t tur[6] = {0};
  for (int i = 0; i < requests; ++i) {
    uint64_t seen = __atomic_load_n(&msix_interrupts, __ATOMIC_RELAXED);  // before: a polling device is fast
    if (!scsi.submit(tur, 6, nullptr, 0, 0, 0)) break;
    uint64_t end = rdtsc() + 5'000'000 * context.tsc_per_us;
    bool done = false;
    while (!done && rdtsc() < end) {
      uint64_t now = __atomic_load_n(&msix_interrupts, __ATOMIC_RELAXED);
      if (now != seen) {
        seen = now;
        uint16_t slot;
        VirtioScsiDriver::Result r;
        done = scsi.reap(&slot, &r);
      }
      pause();
    }
    if (!done) break;
    ++announced;
  }
  print("BH-RESULT scsi-irq requests=%d completion_interrupts=%d early_interrupts=%lu\n", requests, announced, before);
  return announced == requests;
}

// MSI-X masking as drivers use it: a completion while the vector is masked sets its pending
// bit and interrupts on unmask, also after the vector was pointed elsewhere meanwhile; and
// masking and unmasking around a completion, as fast as the guest can, never loses it.
bool scenario_msix_mask(const char* arg, Context& context) {
  set_vector_handler(kMsixCpuVector, on_msix);
  set_vector_handler(kMsixOtherCpuVector, on_msix);
  VirtioScsiDriver scsi;
  if (!scsi.init(0, kMsixCpuVector)) {
    print("BH-RESULT msix-mask error=no-device\n");
    return false;
  }
  wait_until([] { return false; }, 100'000, context);  // let the back-end's set-up signal arrive
  int rounds = static_cast<int>(parse_number(arg, 16));
  int pending_while_masked = 0, silent_while_masked = 0, delivered_on_unmask = 0, raced = 0;
  uint8_t tur[6] = {0};
  uint16_t slot;
  VirtioScsiDriver::Result r;
  for (int i = 0; i < rounds; ++i) {
    scsi.pci().msix_mask(0, true);
    uint64_t before = interrupts();
    if (!scsi.submit(tur, 6, nullptr, 0, 0, 0)) break;
    if (!wait_until([&] { return scsi.completion_pending(); }, 5'000'000, context)) break;
    // The core's interrupt monitor records the masked signal a little after the used ring shows it.
    pending_while_masked += wait_until([&] { return scsi.pci().msix_pending(0); }, 1'000'000, context);
    if (i % 2) scsi.pci().msix_retarget(0, i % 4 == 1 ? kMsixOtherCpuVector : kMsixCpuVector);
    silent_while_masked += interrupts() == before;
    scsi.pci().msix_mask(0, false);
    delivered_on_unmask += wait_until([&] { return interrupts() != before; }, 5'000'000, context);
    scsi.reap(&slot, &r);
  }
  for (int i = 0; i < rounds; ++i) {
    uint64_t before = interrupts();
    if (!scsi.submit(tur, 6, nullptr, 0, 0, 0)) break;
    for (int k = 0; k < 50; ++k) {
      scsi.pci().msix_mask(0, true);
      scsi.pci().msix_mask(0, false);
    }
    raced += wait_until([&] { return interrupts() != before; }, 5'000'000, context);
    wait_until([&] { return scsi.completion_pending(); }, 5'000'000, context);
    scsi.reap(&slot, &r);
  }
  bool ok = pending_while_masked == rounds && silent_while_masked == rounds && delivered_on_unmask == rounds &&
            raced == rounds;
  print("BH-RESULT msix-mask rounds=%d pending_while_masked=%d silent_while_masked=%d delivered_on_unmask=%d "
        "raced_and_delivered=%d %s\n",
        rounds, pending_while_masked, silent_while_masked, delivered_on_unmask, raced, ok ? "ok" : "FAILED");
  return ok;
}

bool scenario_blk_disk(const char*, Context&) {
  VirtioBlkDriver blk;
  if (!blk.init()) {
    print("BH-RESULT blk-disk error=no-device\n");
    return false;
  }
  uint64_t blocks = blk.capacity_sectors();
  constexpr uint32_t kBytes = kSiteBlocks * kBlock;
  auto* buf = static_cast<uint8_t*>(dma_alloc(kBytes, 512));
  int written = 0, verified = 0;
  for (int site = 0; site < kPatternSites; ++site) {
    uint64_t lba = site_lba(site, blocks);
    fill(buf, lba, kSiteBlocks);
    if (blk.request(VirtioBlkDriver::kOut, lba, buf, kBytes) == VirtioBlkDriver::kOk) ++written;
  }
  bool flushed = blk.request(VirtioBlkDriver::kFlush, 0, nullptr, 0) == VirtioBlkDriver::kOk;
  for (int site = 0; site < kPatternSites; ++site) {
    uint64_t lba = site_lba(site, blocks);
    memset(buf, 0, kBytes);
    if (blk.request(VirtioBlkDriver::kIn, lba, buf, kBytes) == VirtioBlkDriver::kOk && check(buf, lba, kSiteBlocks)) ++verified;
  }
  uint8_t beyond = blk.request(VirtioBlkDriver::kIn, blocks, buf, kBlock);
  bool ok = written == kPatternSites && verified == kPatternSites && flushed && beyond == VirtioBlkDriver::kIoError;
  print("BH-RESULT blk-disk blocks=%lu written=%d verified=%d flush=%s beyond_end=%u %s\n", blocks, written, verified,
        flushed ? "ok" : "failed", beyond, ok ? "ok" : "FAILED");
  return ok;
}

namespace {

// A disk the benchmark can drive at any queue depth.
struct BenchDisk {
  // Never deleted through a base pointer (no heap in the guest): no virtual destructor.
 protected:
  ~BenchDisk() = default;

 public:
  virtual uint16_t depth() = 0;
  virtual uint64_t blocks() = 0;
  virtual bool submit(bool write, uint64_t lba, uint8_t* buf, uint32_t bytes, uint16_t slot) = 0;
  virtual bool reap(uint16_t* slot) = 0;
};

struct ScsiBench : BenchDisk {
  VirtioScsiDriver scsi;
  uint64_t capacity = 0;
  uint16_t depth() override { return scsi.depth() / 2; }
  uint64_t blocks() override { return capacity; }
  bool submit(bool write, uint64_t lba, uint8_t* buf, uint32_t bytes, uint16_t slot) override {
    uint8_t cdb[16];
    int len = rw_cdb(cdb, write, lba, bytes / kBlock, false);
    Segment seg{buf, bytes, !write};
    return scsi.submit(cdb, len, &seg, 1, 0, slot, false);
  }
  bool reap(uint16_t* slot) override {
    VirtioScsiDriver::Result r;
    return scsi.reap(slot, &r);
  }
};

struct BlkBench : BenchDisk {
  VirtioBlkDriver blk;
  uint16_t depth() override { return blk.depth() / 3; }
  uint64_t blocks() override { return blk.capacity_sectors(); }
  bool submit(bool write, uint64_t lba, uint8_t* buf, uint32_t bytes, uint16_t slot) override {
    return blk.submit(write ? VirtioBlkDriver::kOut : VirtioBlkDriver::kIn, lba, buf, bytes, slot);
  }
  bool reap(uint16_t* slot) override {
    uint8_t status;
    return blk.reap(slot, &status);
  }
};

// Runs `ops` I/Os of `bytes` at queue depth `qd` (random or sequential); returns ops/s.
uint64_t run(BenchDisk& disk, bool write, bool random, uint32_t bytes, uint16_t qd, uint64_t ops, uint8_t** buffers,
             uint64_t tsc_per_us) {
  uint64_t seed = 0x9e3779b97f4a7c15ull, next_lba = 0;
  uint64_t span = disk.blocks() - bytes / kBlock;
  uint64_t submitted = 0, completed = 0;
  uint16_t free_slots[64];
  int free_count = 0;
  for (uint16_t s = 0; s < qd; ++s) free_slots[free_count++] = s;
  uint64_t start = rdtsc();
  while (completed < ops) {
    while (submitted < ops && free_count > 0) {
      uint16_t slot = free_slots[free_count - 1];
      uint64_t lba = random ? (xorshift(&seed) % span) & ~7ull : next_lba;
      next_lba = (next_lba + bytes / kBlock) % span;
      if (!disk.submit(write, lba, buffers[slot], bytes, slot)) break;
      --free_count;
      ++submitted;
    }
    uint16_t slot;
    while (disk.reap(&slot)) {
      free_slots[free_count++] = slot;
      ++completed;
    }
  }
  uint64_t us = (rdtsc() - start) / tsc_per_us;
  return us ? ops * 1'000'000 / us : 0;
}

bool bench(BenchDisk& disk, const char* name, uint64_t scale, Context& context) {
  uint16_t qd = disk.depth() < 32 ? disk.depth() : 32;
  uint8_t* small[32];
  uint8_t* large[32];
  for (int i = 0; i < 32; ++i) small[i] = static_cast<uint8_t*>(dma_alloc(4096, 4096));
  for (int i = 0; i < 4; ++i) large[i] = static_cast<uint8_t*>(dma_alloc(128 * 1024, 4096));
  uint64_t t = context.tsc_per_us;
  uint64_t rr1 = run(disk, false, true, 4096, 1, 500 * scale, small, t);
  uint64_t rr32 = run(disk, false, true, 4096, qd, 4000 * scale, small, t);
  uint64_t rw1 = run(disk, true, true, 4096, 1, 500 * scale, small, t);
  uint64_t rw32 = run(disk, true, true, 4096, qd, 4000 * scale, small, t);
  uint64_t sr = run(disk, false, false, 128 * 1024, 4, 200 * scale, large, t);
  uint64_t sw = run(disk, true, false, 128 * 1024, 4, 200 * scale, large, t);
  print("BH-RESULT %s qd=%u randread_qd1_iops=%lu randread_qd32_iops=%lu randwrite_qd1_iops=%lu randwrite_qd32_iops=%lu "
        "seqread_128k_mbps=%lu seqwrite_128k_mbps=%lu\n",
        name, qd, rr1, rr32, rw1, rw32, sr * 128 / 1024, sw * 128 / 1024);
  return rr1 && rr32 && rw1 && rw32 && sr && sw;
}

}  // namespace

bool scenario_bench_scsi(const char* arg, Context& context) {
  ScsiBench disk;
  if (!disk.scsi.init()) return print("BH-RESULT bench-scsi error=no-device\n"), false;
  uint8_t rc16[16] = {0x9e, 0x10};
  rc16[13] = 32;
  auto* data = static_cast<uint8_t*>(dma_alloc(32, 16));
  Segment seg{data, 32, true};
  disk.scsi.command(rc16, 16, &seg, 1);
  disk.capacity = ((static_cast<uint64_t>(be32(data)) << 32) | be32(data + 4)) + 1;
  return bench(disk, "bench-scsi", parse_number(arg, 1), context);
}

bool scenario_bench_blk(const char* arg, Context& context) {
  BlkBench disk;
  if (!disk.blk.init()) return print("BH-RESULT bench-blk error=no-device\n"), false;
  return bench(disk, "bench-blk", parse_number(arg, 1), context);
}

}  // namespace guest
