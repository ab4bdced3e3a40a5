// The test-only scratch device (device-procs/scratch/scratch_device.h), driven through every
// path a legacy device process serves: a memory BAR, an I/O BAR with string I/O, a fixed
// port, device-specific configuration space, DMA (and its refusals), a level-triggered INTx
// that re-fires after EOI while raised, and an edge ISA line.
#include <string.h>

#include "arch.h"
#include "console.h"
#include "cpu.h"
#include "dma.h"
#include "drivers/ioapic.h"
#include "drivers/pci.h"
#include "drivers/pic.h"
#include "scenario.h"

namespace guest {

namespace {

constexpr uint32_t kMagic = 0x5c7a7c40;
constexpr uint16_t kFixedPort = 0x520;
constexpr uint8_t kIsaIrq = 10;
constexpr uint8_t kIntxVector = 0x60, kMsiVector = 0x64;
constexpr uint32_t kDone = 1, kOutsideRam = 2, kBusMasterOff = 4;

uint64_t intx_count;
void on_intx() { __atomic_add_fetch(&intx_count, 1, __ATOMIC_RELAXED); }
uint64_t intx() { return __atomic_load_n(&intx_count, __ATOMIC_RELAXED); }
uint64_t msi_interrupts;
void on_msi() { __atomic_add_fetch(&msi_interrupts, 1, __ATOMIC_RELAXED); }
uint64_t msi_count() { return __atomic_load_n(&msi_interrupts, __ATOMIC_RELAXED); }

template <typename F>
bool wait_until(F condition, uint64_t us, const Context& context) {
  uint64_t end = rdtsc() + us * context.tsc_per_us;
  while (!condition())
    if (rdtsc() > end) return false;
    else pause();
  return true;
}

}  // namespace

bool scenario_scratch(const char*, Context& context) {
  PciFunction fn;
  if (!pci_find(0x1b36, 0x00ff, 0, &fn)) {
    print("BH-RESULT scratch error=no-device\n");
    return false;
  }
  pci_enable(fn);
  uint64_t regs = pci_bar(fn, 0);
  uint16_t fifo = static_cast<uint16_t>(pci_read32(fn, 0x14) & ~3u);
  auto reg = [&](uint32_t offset) { return mmio_read32(regs + offset); };
  auto set = [&](uint32_t offset, uint32_t value) { mmio_write32(regs + offset, value); };
  const char* failed = "none";
  auto expect = [&](bool ok, const char* what) {
    if (!ok && failed[0] == 'n') failed = what;
  };

  // Registers through the memory BAR, the fixed port, configuration space.
  expect(reg(0x00) == kMagic, "magic");
  set(0x04, 0xa5a51234);
  expect(reg(0x04) == 0xa5a51234, "bar-scratch");
  outl(kFixedPort, 0x600df00d);
  expect(inl(kFixedPort) == 0x600df00d, "fixed-port");
  pci_write32(fn, 0x40, 0x12345678);
  expect(pci_read32(fn, 0x40) == 0x12345678 && reg(0x2c) == 0x12345678, "config-space");
  expect(reg(0x30) & 0x4, "command-register-forwarded");

  // BARs go where the guest puts them: the core follows, and the old place is empty.
  pci_write32(fn, 0x10, 0xd0000000);
  expect(mmio_read32(0xd0000000) == kMagic && mmio_read32(regs) == 0xffffffff, "memory-bar-moved");
  pci_write32(fn, 0x10, static_cast<uint32_t>(regs));
  expect(reg(0x00) == kMagic, "memory-bar-back");
  pci_write32(fn, 0x14, 0xd000);
  outl(0xd008, 0);  // empty the FIFO at its new place
  expect(inl(0xd004) == 0 && inl(static_cast<uint16_t>(fifo + 4)) == 0xffffffff, "io-bar-moved");
  pci_write32(fn, 0x14, fifo);

  // String I/O both ways through the I/O BAR's FIFO: one ATA sector of words, then dwords.
  auto* out = static_cast<uint16_t*>(dma_alloc(2048, 16));
  auto* in = static_cast<uint16_t*>(dma_alloc(2048, 16));
  for (int i = 0; i < 1024; ++i) out[i] = static_cast<uint16_t>(i * 31 + 7);
  outsw(fifo, out, 256);
  expect(inl(static_cast<uint16_t>(fifo + 4)) == 512, "fifo-count");
  insw(fifo, in, 256);
  outsl(fifo, out + 256, 384);
  insl(fifo, in + 256, 384);
  expect(memcmp(in, out, 2048) == 0, "string-io");

  // DMA within RAM, then to places it must refuse.
  auto* src = static_cast<uint8_t*>(dma_alloc(65536, 4096));
  auto* dst = static_cast<uint8_t*>(dma_alloc(65536, 4096));
  for (int i = 0; i < 65536; ++i) src[i] = static_cast<uint8_t>(i ^ (i >> 8));
  auto copy = [&](uint64_t from, uint64_t to, uint32_t length) {
    set(0x08, static_cast<uint32_t>(from));
    set(0x0c, static_cast<uint32_t>(from >> 32));
    set(0x10, static_cast<uint32_t>(to));
    set(0x14, static_cast<uint32_t>(to >> 32));
    set(0x18, length);
    set(0x1c, 1);
    return reg(0x20);
  };
  expect(copy(phys(src), phys(dst), 65536) == kDone && memcmp(src, dst, 65536) == 0, "dma");
  expect(copy(phys(src), regs, 64) == kOutsideRam, "dma-into-its-own-registers");
  expect(copy(0xffff0000ull, phys(dst), 4096) == kOutsideRam, "dma-from-outside-ram");
  expect(copy(phys(src), phys(dst), 2 << 20) == kOutsideRam, "dma-too-long");
  pci_write16(fn, 0x04, static_cast<uint16_t>(pci_read16(fn, 0x04) & ~0x4));  // bus mastering off
  expect(copy(phys(src), phys(dst), 16) == kBusMasterOff, "dma-without-bus-mastering");
  pci_enable(fn);
  expect(reg(0x00) == kMagic, "responsive-after-refusals");

  // INTx: the slot's GSI, whatever the guest writes into Interrupt Line afterwards.
  uint8_t gsi = pci_read8(fn, 0x3c);
  pci_write32(fn, 0x3c, (pci_read32(fn, 0x3c) & ~0xffu) | 5);  // scribble: software scratch only
  set_vector_handler(kIntxVector, on_intx);
  ioapic_route(gsi, kIntxVector, true, static_cast<uint8_t>(apic_id()));
  set(0x24, 1);  // raised and left raised: after each EOI the line must fire again
  bool refires = wait_until([] { return intx() >= 5; }, 5'000'000, context);
  set(0x24, 0);
  uint64_t settle = rdtsc() + 20'000 * context.tsc_per_us;
  while (rdtsc() < settle) pause();
  uint64_t after_lowering = intx();
  settle = rdtsc() + 100'000 * context.tsc_per_us;
  while (rdtsc() < settle) pause();
  expect(refires, "intx-refires-while-raised");
  expect(intx() == after_lowering, "intx-quiet-once-lowered");
  ioapic_mask(gsi);

  // MSI (the core's capability): the same line, now as a message on each rising edge.
  uint8_t msi = pci_capability(fn, 0x05);
  expect(msi != 0, "msi-capability");
  uint64_t intx_before_msi = intx();
  if (msi) {
    set_vector_handler(kMsiVector, on_msi);
    pci_write32(fn, static_cast<uint8_t>(msi + 4), 0xfee00000u | apic_id() << 12);
    pci_write16(fn, static_cast<uint8_t>(msi + 8), kMsiVector);
    pci_write16(fn, static_cast<uint8_t>(msi + 2), static_cast<uint16_t>(pci_read16(fn, static_cast<uint8_t>(msi + 2)) | 1));
    ioapic_route(gsi, kIntxVector, true, static_cast<uint8_t>(apic_id()));  // INTx must stay quiet
    for (int edge = 0; edge < 2; ++edge) {
      set(0x24, 1);
      expect(wait_until([edge] { return msi_count() == static_cast<uint64_t>(edge + 1); }, 5'000'000, context), "msi");
      set(0x24, 0);
    }
    pci_write16(fn, static_cast<uint8_t>(msi + 2), static_cast<uint16_t>(pci_read16(fn, static_cast<uint8_t>(msi + 2)) & ~1));
    settle = rdtsc() + 20'000 * context.tsc_per_us;
    while (rdtsc() < settle) pause();
    expect(msi_count() == 2 && intx() == intx_before_msi, "msi-only-while-enabled");
    ioapic_mask(gsi);
  }

  // An edge on the ISA line, through the 8259.
  pic_unmask(kIsaIrq);
  uint64_t isa_before = irq_count(kIsaIrq);
  set(0x28, 1);
  expect(wait_until([&] { return irq_count(kIsaIrq) == isa_before + 1; }, 5'000'000, context), "isa-irq");
  pic_mask(kIsaIrq);

  bool ok = failed[0] == 'n';
  print("BH-RESULT scratch gsi=%u intx=%lu isa_irqs=%lu msi=%lu failed_check=\"%s\" %s\n", gsi, intx(),
        irq_count(kIsaIrq) - isa_before, msi_count(), failed, ok ? "ok" : "FAILED");
  return ok;
}

}  // namespace guest
