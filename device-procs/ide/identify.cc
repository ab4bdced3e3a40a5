#include "device-procs/ide/identify.h"

#include <algorithm>

#include "device-procs/ide/ata.h"

namespace bulkhead::device {

namespace {

// ATA strings: space-padded, two characters a word, the first in the high byte.
void put_string(IdentifyData& id, size_t first_word, size_t words, const std::string& text) {
  for (size_t i = 0; i < words; ++i) {
    auto at = [&](size_t c) -> uint16_t { return c < text.size() ? static_cast<uint8_t>(text[c]) : ' '; };
    id[first_word + i] = static_cast<uint16_t>(at(2 * i) << 8 | at(2 * i + 1));
  }
}

// Word 63 (multiword DMA) and 88 (Ultra DMA): supported modes, and the selected one.
void put_dma_modes(IdentifyData& id, TransferMode mode) {
  id[63] = 0x0007;  // multiword DMA 0-2
  id[88] = 0x003f;  // Ultra DMA 0-5
  if ((mode.value & 0xf8) == 0x20) id[63] |= static_cast<uint16_t>(0x100 << (mode.value & 7));
  if ((mode.value & 0xf8) == 0x40) id[88] |= static_cast<uint16_t>(0x100 << (mode.value & 7));
  id[64] = 0x0003;  // PIO 3 and 4
  id[65] = id[66] = id[67] = id[68] = 120;  // cycle times, ns
}

// Word 255: signature 0xa5 and a checksum that makes the 512 bytes sum to zero.
void put_integrity(IdentifyData& id) {
  id[255] = 0x00a5;
  uint8_t sum = 0;
  for (uint16_t w : id) sum = static_cast<uint8_t>(sum + (w & 0xff) + (w >> 8));
  id[255] = static_cast<uint16_t>(static_cast<uint8_t>(-sum) << 8 | 0xa5);
}

}  // namespace

DiskGeometry default_geometry(uint64_t sectors) {
  uint64_t cylinders = std::clamp<uint64_t>(sectors / (16 * 63), 1, 16383);
  return {static_cast<uint16_t>(cylinders), 16, 63};
}

IdentifyData identify_disk(const DiskIdentity& disk) {
  IdentifyData id{};
  const DiskGeometry g = default_geometry(disk.sectors);
  id[0] = 0x0040;  // fixed, not removable
  id[1] = g.cylinders;
  id[3] = g.heads;
  id[6] = g.sectors;
  put_string(id, 10, 10, disk.serial);
  put_string(id, 23, 4, "1.0");
  put_string(id, 27, 20, disk.model);
  id[47] = 0x8000 | ata::kMaxMultiple;
  id[49] = 0x0b00;  // IORDY, LBA, DMA
  id[50] = 0x4000;
  id[53] = 0x0007;  // words 54-58, 64-70 and 88 are valid
  const DiskGeometry c = disk.current.heads ? disk.current : g;
  const uint32_t chs_sectors = static_cast<uint32_t>(std::min<uint64_t>(
      static_cast<uint64_t>(c.cylinders) * c.heads * c.sectors, disk.sectors));
  id[54] = c.cylinders;
  id[55] = c.heads;
  id[56] = c.sectors;
  id[57] = static_cast<uint16_t>(chs_sectors);
  id[58] = static_cast<uint16_t>(chs_sectors >> 16);
  if (disk.multiple) id[59] = 0x0100 | disk.multiple;
  const uint32_t lba28 = static_cast<uint32_t>(std::min<uint64_t>(disk.sectors, 0x0fffffff));
  id[60] = static_cast<uint16_t>(lba28);
  id[61] = static_cast<uint16_t>(lba28 >> 16);
  put_dma_modes(id, disk.mode);
  id[80] = 0x00f0;  // ATA/ATAPI-4 to -7
  id[82] = 0x0068;  // write cache, look-ahead, power management
  id[83] = 0x7400;  // FLUSH CACHE EXT, FLUSH CACHE, 48-bit addresses
  id[84] = 0x4000;
  id[85] = static_cast<uint16_t>(0x0048 | (disk.write_cache ? 0x0020 : 0));
  id[86] = 0x3400;
  id[87] = 0x4000;
  id[93] = 0x4001;  // reset result: device 0 passed (no 80-wire cable claimed)
  for (int i = 0; i < 4; ++i) id[100 + i] = static_cast<uint16_t>(disk.sectors >> (16 * i));
  id[106] = 0x4000;  // one 512-byte logical sector per physical sector
  id[217] = 0x0001;  // not rotating
  put_integrity(id);
  return id;
}

IdentifyData identify_cdrom(const CdromIdentity& cdrom) {
  IdentifyData id{};
  // ATAPI, CD-ROM, removable, DRQ within 50 µs of PACKET (no interrupt for the packet), 12-byte packets.
  id[0] = 0x85c0;
  put_string(id, 10, 10, cdrom.serial);
  put_string(id, 23, 4, "1.0");
  put_string(id, 27, 20, cdrom.model);
  id[49] = 0x0b00;  // IORDY, LBA, DMA
  id[53] = 0x0006;  // words 64-70 and 88 are valid
  put_dma_modes(id, cdrom.mode);
  id[80] = 0x00f0;
  id[82] = 0x0210;  // DEVICE RESET, PACKET
  id[83] = 0x4000;
  id[84] = 0x4000;
  id[85] = 0x0210;
  id[87] = 0x4000;
  put_integrity(id);
  return id;
}

}  // namespace bulkhead::device
