#include "drivers/pic.h"

#include "arch.h"
#include "cpu.h"

namespace guest {

namespace {
constexpr uint16_t kMasterCmd = 0x20, kMasterData = 0x21, kSlaveCmd = 0xa0, kSlaveData = 0xa1;
constexpr uint8_t kEoi = 0x20;
}  // namespace

void pic_init() {
  outb(kMasterCmd, 0x11);  // ICW1: edge, cascade, ICW4 follows
  outb(kSlaveCmd, 0x11);
  outb(kMasterData, kPicVectorBase);
  outb(kSlaveData, kPicVectorBase + 8);
  outb(kMasterData, 0x04);  // slave on IRQ2
  outb(kSlaveData, 0x02);
  outb(kMasterData, 0x01);  // 8086 mode
  outb(kSlaveData, 0x01);
  outb(kMasterData, 0xfb);  // all masked but the cascade
  outb(kSlaveData, 0xff);
}

void pic_unmask(uint8_t irq) {
  uint16_t port = irq < 8 ? kMasterData : kSlaveData;
  outb(port, inb(port) & ~(1 << (irq & 7)));
}

void pic_mask(uint8_t irq) {
  uint16_t port = irq < 8 ? kMasterData : kSlaveData;
  outb(port, inb(port) | (1 << (irq & 7)));
}

void pic_eoi(uint8_t irq) {
  if (irq >= 8) outb(kSlaveCmd, kEoi);
  outb(kMasterCmd, kEoi);
}

}  // namespace guest
