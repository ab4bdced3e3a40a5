// An MMC CD/DVD-ROM drive's command set, as an ATAPI device answers it: the commands Linux's sr
// and cdrom drivers (and libata's probe) send, CHECK CONDITION with proper sense for the rest.
// Pure state: no I/O. A READ becomes a request for blocks, which the caller reads from the
// image. Media can be ejected and inserted at run time (the control socket will drive it).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "device-procs/common/scsi.h"

namespace bulkhead::device {

class Cdrom {
 public:
  static constexpr uint32_t kBlockSize = 2048;
  static constexpr size_t kPacketSize = 12;

  struct Reply {
    enum class Kind { kData, kRead, kCheck } kind = Kind::kData;
    std::vector<uint8_t> data;  // kData: at most what the CDB's allocation length allows
    uint64_t lba = 0;           // kRead: blocks of kBlockSize
    uint32_t blocks = 0;
  };

  // `image_bytes` 0: no medium.
  explicit Cdrom(uint64_t image_bytes) { insert(image_bytes, false); }

  Reply execute(std::span<const uint8_t, kPacketSize> cdb);
  // The sense of the last CHECK CONDITION (or of a failed read, through fail()).
  scsi::Sense sense() const { return sense_; }
  Reply fail(scsi::Sense s);

  // Media change: the next command reports UNIT ATTENTION (medium may have changed) and
  // GET EVENT STATUS NOTIFICATION reports the new medium. False while the guest locked the
  // tray (PREVENT ALLOW MEDIUM REMOVAL) for an eject.
  bool eject();
  void insert(uint64_t image_bytes, bool notify = true);
  bool has_medium() const { return blocks_ > 0; }
  uint64_t blocks() const { return blocks_; }
  bool locked() const { return locked_; }

  // Crash recovery: everything the drive remembers between commands, as plain bytes.
  struct State {
    uint64_t blocks;
    scsi::Sense sense;
    uint8_t unit_attention, media_event, locked;
  };
  State state() const;
  // Throws InputError unless `state` is one this drive, with an image of `image_bytes`, can be in.
  void restore(const State& state, uint64_t image_bytes);

 private:
  Reply inquiry(std::span<const uint8_t> cdb);
  Reply read_capacity();
  Reply read(uint64_t lba, uint32_t blocks);
  Reply read_toc(std::span<const uint8_t> cdb);
  Reply get_configuration(std::span<const uint8_t> cdb);
  Reply event_status(std::span<const uint8_t> cdb);
  Reply mode_sense(std::span<const uint8_t> cdb);
  Reply disc_information(std::span<const uint8_t> cdb);
  Reply request_sense(std::span<const uint8_t> cdb);
  Reply start_stop(std::span<const uint8_t> cdb);
  bool is_dvd() const;

  uint64_t blocks_ = 0;
  scsi::Sense sense_ = scsi::sense::kNone;
  bool unit_attention_ = false;
  bool media_event_ = false;  // a new medium, not yet reported by GET EVENT STATUS
  bool locked_ = false;
};

}  // namespace bulkhead::device
