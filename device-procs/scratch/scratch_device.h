// A device that exists for tests (BULKHEAD_TEST_DEVICES builds): a PCI function with a
// memory BAR of registers, an I/O BAR with a FIFO for string I/O, a fixed ISA-style port,
// device-specific configuration space, a level-triggered INTx line, an edge ISA line and a
// DMA engine that copies within guest RAM. It exercises every part of the legacy device
// protocol a real device (IDE, e1000) needs, with nothing else in the way.
//
// BAR0 (memory, 4 KiB, 32-bit registers):   BAR1 (I/O, 16 ports):
//   0x00 magic (read-only)                     0x0 FIFO data: writes append, reads take
//   0x04 scratch                                   (0xff... when empty); 1, 2 or 4 bytes
//   0x08/0x0c DMA source (low/high)            0x4 FIFO bytes held (read-only)
//   0x10/0x14 DMA destination (low/high)       0x8 write: empty the FIFO
//   0x18 DMA length (at most 1 MiB)         Fixed port window (4 ports): a 32-bit scratch.
//   0x1c write 1: copy source -> destination Config space 0x40: a 32-bit scratch register.
//   0x20 DMA status: 1 done, 2 outside RAM,
//        4 bus mastering off
//   0x24 INTx level: write 1 raises, 0 lowers (it stays raised until lowered)
//   0x28 write: one edge on the ISA line
//   0x2c config scratch as last written; 0x30 command register as last written
#pragma once

#include <deque>

#include "common/event_loop.h"
#include "device-procs/common/irq_line.h"
#include "device-procs/common/legacy_device_server.h"

namespace bulkhead::device {

class ScratchDevice : public LegacyDeviceModel {
 public:
  static constexpr const char* kKind = "scratch";
  static constexpr uint32_t kMagic = 0x5c7a7c40;
  static constexpr uint8_t kRegisters = 0, kFifo = 1, kPort = 2, kConfig = 3;
  static constexpr uint64_t kMaxDma = 1 << 20;
  static constexpr size_t kFifoBytes = 64 << 10;

  explicit ScratchDevice(EventLoop& loop) : loop_(loop) {}

  legacy::DeviceInfo info() const override;
  uint64_t read(uint8_t region, uint64_t offset, uint8_t size) override;
  void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) override;
  void attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) override;
  void attach_memory(const vhost_user::MemoryMap& memory) override { memory_ = &memory; }

 private:
  uint32_t dma();

  EventLoop& loop_;
  IrqLine intx_, isa_;
  const vhost_user::MemoryMap* memory_ = nullptr;
  uint32_t scratch_ = 0, port_scratch_ = 0, config_scratch_ = 0, command_ = 0;
  uint64_t dma_source_ = 0, dma_destination_ = 0;
  uint32_t dma_length_ = 0, dma_status_ = 0;
  std::deque<uint8_t> fifo_;
};

}  // namespace bulkhead::device
