// A PIIX IDE driver (polling; the interrupt lines are counted by the scenario), for the IDE
// scenarios: ATA PIO (sectors, multiple, 16- and 32-bit string I/O), bus-master DMA with PRD
// tables, LBA28 and LBA48, and ATAPI packets in PIO and DMA; raw PRD tables for hostile inputs.
#pragma once

#include <stdint.h>

#include "arch.h"
#include "drivers/pci.h"

namespace guest {

class IdeDriver {
 public:
  static constexpr uint16_t kVendor = 0x8086, kDevice = 0x7010;
  struct Prd {
    uint32_t address;
    uint32_t control;  // byte count (0: 64 KiB) | 0x80000000 end of table
  };
  // What a command ended with: status and error registers (and the bus-master status for DMA).
  struct Result {
    bool ok;
    uint8_t status, error, bm_status;
  };

  bool init();
  const PciFunction& function() const { return fn_; }
  void select(int drive);  // 0-3: primary master ... secondary slave
  uint16_t command_port() const { return channel_ ? 0x170 : 0x1f0; }
  uint16_t control_port() const { return channel_ ? 0x376 : 0x3f6; }
  uint16_t bm_port() const { return static_cast<uint16_t>(bm_ + (channel_ ? 8 : 0)); }
  uint8_t status() { return inb(static_cast<uint16_t>(command_port() + 7)); }

  // Waits (bounded) for BSY to clear; the status then.
  uint8_t wait_ready();
  Result identify(uint16_t* words, bool packet);
  Result non_data(uint8_t command, uint8_t feature = 0, uint8_t count = 0);
  // PIO transfers of `count` sectors at `lba` (48-bit commands when `ext`); `multiple` uses
  // READ/WRITE MULTIPLE with the block size set earlier; `dword` moves 32-bit items.
  Result pio(bool write, uint64_t lba, uint32_t count, void* buffer, bool ext, bool multiple, bool dword);
  // DMA with a PRD table that splits `buffer` into pieces of `piece` bytes.
  Result dma(bool write, uint64_t lba, uint32_t count, void* buffer, bool ext, uint32_t piece = 65536);
  // DMA with the PRD table given as is (hostile tests); `table` is its guest address.
  Result dma_raw(bool write, uint64_t lba, uint32_t count, uint32_t table, bool ext);
  // An ATAPI packet; data of up to `length` bytes into `buffer` (PIO in `byte_limit` pieces,
  // or DMA). *transferred gets the bytes moved.
  Result packet(const uint8_t* cdb, void* buffer, uint32_t length, bool dma, uint16_t byte_limit,
                uint32_t* transferred);
  // Loads a 28-bit address and count and writes `command`: nothing more (hostile tests).
  void issue(uint8_t command, uint64_t lba, uint32_t count);
  void soft_reset();
  void set_bus_master(bool on);

 private:
  void load_address(uint64_t lba, uint32_t count, bool ext);
  Result finish_dma(bool write);
  void start_dma(bool write, uint32_t table);
  PciFunction fn_{};
  uint16_t bm_ = 0;
  int channel_ = 0, drive_ = 0;
  Prd* prd_ = nullptr;  // a PRD table in DMA memory, 64 KiB aligned
};

}  // namespace guest
