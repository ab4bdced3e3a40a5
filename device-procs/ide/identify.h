// IDENTIFY DEVICE (ATA disk) and IDENTIFY PACKET DEVICE (ATAPI CD-ROM) data.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace bulkhead::device {

using IdentifyData = std::array<uint16_t, 256>;

// The transfer modes a drive uses, as SET FEATURES chose them (ATA's encoding: 0x08|n PIO n,
// 0x20|n multiword DMA n, 0x40|n Ultra DMA n).
struct TransferMode {
  uint8_t value = 0x0c;  // PIO 4
};

struct DiskGeometry {
  uint16_t cylinders, heads, sectors;
};
// The BIOS-style geometry of a disk of `sectors` 512-byte sectors (16 heads, 63 sectors).
DiskGeometry default_geometry(uint64_t sectors);

struct DiskIdentity {
  uint64_t sectors = 0;
  std::string serial, model;
  DiskGeometry current{};   // INITIALIZE DEVICE PARAMETERS
  uint8_t multiple = 0;     // SET MULTIPLE MODE: sectors per block, 0 off
  bool write_cache = true;
  TransferMode mode;
};
IdentifyData identify_disk(const DiskIdentity& disk);

struct CdromIdentity {
  std::string serial, model;
  TransferMode mode;
};
IdentifyData identify_cdrom(const CdromIdentity& cdrom);

}  // namespace bulkhead::device
