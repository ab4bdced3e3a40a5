#include "device-procs/ide/ide_channel.h"

#include <algorithm>
#include <climits>
#include <cstring>

#include "common/error.h"
#include "device-procs/ide/ata.h"

namespace bulkhead::device {

using namespace ata;

namespace {

constexpr uint8_t kBmStart = 0x01, kBmToMemory = 0x08;
constexpr uint8_t kBmActive = 0x01, kBmError = 0x02, kBmInterrupt = 0x04, kBmDriveDmaCapable = 0x60;
constexpr uint32_t kChunkSectors = 128;  // PIO reads buffer up to 64 KiB at a time
constexpr uint32_t kChunkCdBlocks = 16;  // and 32 KiB of a CD
constexpr uint8_t kIdle = status::kDrdy | status::kDsc;

bool valid_transfer_mode(uint8_t mode) {
  return mode <= 0x01 || (mode >= 0x08 && mode <= 0x0c) || (mode >= 0x20 && mode <= 0x22) ||
         (mode >= 0x40 && mode <= 0x45);
}

}  // namespace

struct IdeChannel::Command {
  enum class Type { kData, kAtaRead, kAtaWrite, kPacket } type = Type::kData;
  bool dma = false;
  bool fua = false;
  uint64_t lba = 0;   // ATA: the next sector; ATAPI: the next CD block
  uint64_t left = 0;  // ATA: sectors still to move; ATAPI: blocks still to read
  uint32_t block_sectors = 1;  // ATA PIO: sectors per DRQ block
  uint32_t byte_limit = 0;     // ATAPI PIO: bytes per DRQ block the host asked for
};

IdeChannel::IdeChannel(std::array<IdeDrive, 2> drives, const DmaAccess& dma, IdeCounters& counters)
    : drives_(std::move(drives)), dma_(dma), counters_(counters) {
  for (IdeDrive& d : drives_)
    if (d.kind != IdeDrive::Kind::kNone) bm_status_ |= static_cast<uint8_t>(&d == &drives_[0] ? 0x20 : 0x40);
  reset_drives();
}

IdeChannel::~IdeChannel() {
  // Outstanding I/O completes while the backends close; its callbacks must find nothing to do.
  ++generation_;
  for (IdeDrive& d : drives_) d.backend.reset();
}

// --- Registers -------------------------------------------------------------------------------

uint32_t IdeChannel::read_command_block(uint8_t reg, uint8_t size) {
  if (reg == kData) {
    uint8_t bytes[4] = {};
    read_data({bytes, std::min<size_t>(size, 4)});
    uint32_t value;
    std::memcpy(&value, bytes, 4);
    return value;
  }
  // An absent drive answers nothing: reads of zero make libata's presence check fail.
  if (absent_selected()) return 0;
  const IdeDrive& d = selected();
  const TaskFile& tf = d.tf;
  const bool hob = control_ & control::kHob;
  switch (reg) {
    case kErrorFeature:
      return d.error;
    case kSectorCount:
      return hob ? tf.hob_count : tf.count;
    case kLbaLow:
      return hob ? tf.hob_lba_low : tf.lba_low;
    case kLbaMid:
      return hob ? tf.hob_lba_mid : tf.lba_mid;
    case kLbaHigh:
      return hob ? tf.hob_lba_high : tf.lba_high;
    case kDevice:
      return device_ | 0xa0;
    default:  // status: reading it acknowledges the interrupt
      irq_pending_ = false;
      update_irq_line();
      return d.status;
  }
}

void IdeChannel::write_command_block(uint8_t reg, uint8_t size, uint32_t value) {
  if (reg == kData) {
    uint8_t bytes[4];
    std::memcpy(bytes, &value, 4);
    write_data({bytes, std::min<size_t>(size, 4)});
    return;
  }
  const uint8_t v = static_cast<uint8_t>(value);
  if (reg >= kErrorFeature && reg <= kLbaHigh) control_ &= static_cast<uint8_t>(~control::kHob);
  for (IdeDrive& d : drives_) {
    TaskFile& tf = d.tf;
    auto push = [v](uint8_t& current, uint8_t& previous) {
      previous = current;
      current = v;
    };
    switch (reg) {
      case kErrorFeature: push(tf.feature, tf.hob_feature); break;
      case kSectorCount: push(tf.count, tf.hob_count); break;
      case kLbaLow: push(tf.lba_low, tf.hob_lba_low); break;
      case kLbaMid: push(tf.lba_mid, tf.hob_lba_mid); break;
      case kLbaHigh: push(tf.lba_high, tf.hob_lba_high); break;
      default: break;
    }
  }
  if (reg == kDevice) device_ = v;
  if (reg == kStatusCommand) {
    irq_pending_ = false;
    update_irq_line();
    if (!absent_selected()) execute(v);  // commands to an absent drive go nowhere
  }
}

uint8_t IdeChannel::read_alt_status() const { return absent_selected() ? 0 : selected().status; }

void IdeChannel::write_device_control(uint8_t value) {
  const bool was_reset = control_ & control::kSrst, reset = value & control::kSrst;
  control_ = value;
  if (reset && !was_reset) {
    cancel();
    bm_status_ &= static_cast<uint8_t>(~kBmActive);
    for (IdeDrive& d : drives_)
      if (d.kind != IdeDrive::Kind::kNone) d.status = status::kBsy;
  } else if (!reset && was_reset) {
    reset_drives();
  }
  update_irq_line();
}

uint32_t IdeChannel::read_bus_master(uint8_t offset, uint8_t size) const {
  switch (offset) {
    case kBmCommand: return bm_command_;
    case kBmStatus: return bm_status_;
    case kBmPrdTable: return size == 4 ? prd_table_ : 0;
    default: return 0;
  }
}

void IdeChannel::write_bus_master(uint8_t offset, uint8_t size, uint32_t value) {
  switch (offset) {
    case kBmCommand: {
      const bool was_started = bm_command_ & kBmStart;
      bm_command_ = static_cast<uint8_t>(value & (kBmStart | kBmToMemory));
      if ((bm_command_ & kBmStart) && !was_started) {
        bm_status_ |= kBmActive;
        if (phase_ == Phase::kDmaWaiting) start_dma();
      } else if (!(bm_command_ & kBmStart)) {
        // Stopping the engine: an image transfer in flight still completes into the regions
        // it was given (guest RAM, which stays mapped); the command then ends as usual.
        bm_status_ &= static_cast<uint8_t>(~kBmActive);
      }
      break;
    }
    case kBmStatus: {
      const uint8_t v = static_cast<uint8_t>(value);
      bm_status_ = static_cast<uint8_t>((v & kBmDriveDmaCapable) | (bm_status_ & kBmActive) |
                                        (bm_status_ & ~v & (kBmError | kBmInterrupt)));
      break;
    }
    case kBmPrdTable:
      if (size == 4) prd_table_ = value & ~3u;
      break;
    default:
      break;
  }
}

// --- Interrupts, resets, command endings ------------------------------------------------------

void IdeChannel::raise_irq() {
  irq_pending_ = true;
  bm_status_ |= kBmInterrupt;
  update_irq_line();
}

void IdeChannel::update_irq_line() { irq_.set_level(irq_pending_ && !(control_ & control::kNien)); }

void IdeChannel::post_signature(IdeDrive& d) {
  d.tf.count = 1;
  d.tf.lba_low = 1;
  const bool packet = d.kind == IdeDrive::Kind::kCdrom;
  d.tf.lba_mid = packet ? 0x14 : 0;
  d.tf.lba_high = packet ? 0xeb : 0;
}

void IdeChannel::reset_drives() {
  cancel();
  device_ = 0;
  control_ &= static_cast<uint8_t>(~control::kHob);
  for (IdeDrive& d : drives_) {
    if (d.kind == IdeDrive::Kind::kNone) continue;
    post_signature(d);
    d.error = error::kDiagnosticPassed;
    // A packet device clears DRDY after a reset, until its first command.
    d.status = d.kind == IdeDrive::Kind::kDisk ? kIdle : 0;
  }
}

void IdeChannel::cancel() {
  ++generation_;
  waiting_for_ = IoStep::kNone;
  command_.reset();
  buffer_.reset();
  pos_ = end_ = 0;
  phase_ = Phase::kIdle;
}

void IdeChannel::finish(uint8_t status) {
  phase_ = Phase::kIdle;
  command_.reset();
  buffer_.reset();
  pos_ = end_ = 0;
  active().status = status;
  raise_irq();
}

void IdeChannel::abort(uint8_t error_bits) {
  ++counters_.aborted;
  active().error = error_bits;
  if (active().kind == IdeDrive::Kind::kCdrom) active().tf.count = kReasonCommand | kReasonIn;
  finish(kIdle | status::kErr);
}

void IdeChannel::io(IoStep step, std::function<void(BlockBackend&, BlockBackend::Done)> op,
                    std::function<void(int64_t)> then) {
  waiting_for_ = step;
  const uint64_t generation = generation_;
  BlockBackend* backend = active().backend.get();
  auto issue = [this, generation, backend, op = std::move(op), then = std::move(then)] {
    if (generation != generation_) return;  // cancelled before it was released
    op(*backend, [this, generation, then](int64_t result) {
      if (generation != generation_) return;
      waiting_for_ = IoStep::kNone;
      then(result);
    });
    backend->submit();
  };
  if (hold_io_) {
    held_io_.push_back(std::move(issue));
  } else {
    issue();
  }
}

void IdeChannel::use_buffer(std::shared_ptr<std::vector<uint8_t>> buffer) {
  buffer_ = std::move(buffer);
  ++buffer_number_;
}

void IdeChannel::complete_io() {
  for (IdeDrive& d : drives_)
    if (d.backend) d.backend->complete();
}

// --- Commands ----------------------------------------------------------------------------------

bool IdeChannel::address(bool ext, uint64_t& lba, uint32_t& sectors) {
  const IdeDrive& d = active();
  const TaskFile& tf = d.tf;
  if (ext) {
    lba = static_cast<uint64_t>(tf.lba_low) | static_cast<uint64_t>(tf.lba_mid) << 8 |
          static_cast<uint64_t>(tf.lba_high) << 16 | static_cast<uint64_t>(tf.hob_lba_low) << 24 |
          static_cast<uint64_t>(tf.hob_lba_mid) << 32 | static_cast<uint64_t>(tf.hob_lba_high) << 40;
    sectors = static_cast<uint32_t>(tf.count | tf.hob_count << 8);
    if (sectors == 0) sectors = 65536;
  } else {
    if (device_ & kDeviceLba) {
      lba = tf.lba_low | tf.lba_mid << 8 | tf.lba_high << 16 | static_cast<uint32_t>(device_ & 0x0f) << 24;
    } else {  // cylinder, head, sector (from 1) in the geometry the drive uses now
      const DiskGeometry g = d.disk.current.heads ? d.disk.current : default_geometry(d.disk.sectors);
      const uint32_t cylinder = tf.lba_mid | tf.lba_high << 8, head = device_ & 0x0f;
      if (tf.lba_low == 0 || tf.lba_low > g.sectors || head >= g.heads) return false;
      lba = (static_cast<uint64_t>(cylinder) * g.heads + head) * g.sectors + tf.lba_low - 1;
    }
    sectors = tf.count ? tf.count : 256;
  }
  return lba <= d.disk.sectors && sectors <= d.disk.sectors - lba;
}

void IdeChannel::execute(uint8_t opcode) {
  cancel();
  active_ = (device_ & kDeviceSlave) ? 1 : 0;
  IdeDrive& d = active();
  d.error = 0;
  const bool cd = d.kind == IdeDrive::Kind::kCdrom;
  auto identify_bytes = [](const IdentifyData& id) {
    auto bytes = std::make_shared<std::vector<uint8_t>>(kSectorSize);
    for (size_t i = 0; i < id.size(); ++i) {
      (*bytes)[2 * i] = static_cast<uint8_t>(id[i]);
      (*bytes)[2 * i + 1] = static_cast<uint8_t>(id[i] >> 8);
    }
    return bytes;
  };

  // A packet device takes only the packet command set (CVE-2015-6855: disk commands on a
  // CD-ROM); the rest is aborted with its signature in place, as libata expects.
  if (cd) {
    switch (opcode) {
      case cmd::kIdentifyPacket:
        command_ = std::make_unique<Command>();
        return start_pio_in(identify_bytes(identify_cdrom(d.cd)), kSectorSize);
      case cmd::kPacket: {
        if (d.tf.feature & 0x02) return abort();  // overlapped commands are not supported
        command_ = std::make_unique<Command>();
        command_->type = Command::Type::kPacket;
        command_->dma = d.tf.feature & 0x01;
        command_->byte_limit = d.tf.lba_mid | d.tf.lba_high << 8;
        use_buffer(std::make_shared<std::vector<uint8_t>>(Cdrom::kPacketSize));
        pos_ = 0;
        end_ = buffer_->size();
        d.tf.count = kReasonCommand;
        d.status = status::kDrdy | status::kDrq;
        phase_ = Phase::kPacket;
        return;  // DRQ within 50 µs, no interrupt (IDENTIFY PACKET word 0)
      }
      case cmd::kDeviceReset:
        post_signature(d);
        d.error = error::kDiagnosticPassed;
        d.status = 0;
        return;
      case cmd::kExecuteDiagnostic:
        reset_drives();
        return finish(0);
      case cmd::kSetFeatures:
        return set_features();
      case cmd::kCheckPowerMode:
        d.tf.count = 0xff;
        return finish(kIdle);
      case cmd::kIdleImmediate:
      case cmd::kStandbyImmediate:
      case cmd::kSleep:
        return finish(kIdle);
      default:
        post_signature(d);
        return abort();
    }
  }

  const bool ext = opcode == cmd::kReadSectorsExt || opcode == cmd::kReadDmaExt || opcode == cmd::kReadMultipleExt ||
                   opcode == cmd::kWriteSectorsExt || opcode == cmd::kWriteDmaExt ||
                   opcode == cmd::kWriteMultipleExt || opcode == cmd::kReadVerifyExt;
  switch (opcode) {
    case cmd::kIdentify:
      command_ = std::make_unique<Command>();
      return start_pio_in(identify_bytes(identify_disk(d.disk)), kSectorSize);
    case cmd::kReadSectors: case cmd::kReadSectorsNoRetry: case cmd::kReadSectorsExt:
    case cmd::kReadMultiple: case cmd::kReadMultipleExt: case cmd::kReadDma: case cmd::kReadDmaNoRetry:
    case cmd::kReadDmaExt: case cmd::kWriteSectors: case cmd::kWriteSectorsNoRetry: case cmd::kWriteSectorsExt:
    case cmd::kWriteMultiple: case cmd::kWriteMultipleExt: case cmd::kWriteDma: case cmd::kWriteDmaNoRetry:
    case cmd::kWriteDmaExt: {
      const bool write = opcode == cmd::kWriteSectors || opcode == cmd::kWriteSectorsNoRetry ||
                         opcode == cmd::kWriteSectorsExt || opcode == cmd::kWriteMultiple ||
                         opcode == cmd::kWriteMultipleExt || opcode == cmd::kWriteDma ||
                         opcode == cmd::kWriteDmaNoRetry || opcode == cmd::kWriteDmaExt;
      const bool multiple = opcode == cmd::kReadMultiple || opcode == cmd::kReadMultipleExt ||
                            opcode == cmd::kWriteMultiple || opcode == cmd::kWriteMultipleExt;
      const bool dma = opcode == cmd::kReadDma || opcode == cmd::kReadDmaNoRetry || opcode == cmd::kReadDmaExt ||
                       opcode == cmd::kWriteDma || opcode == cmd::kWriteDmaNoRetry || opcode == cmd::kWriteDmaExt;
      if (multiple && d.disk.multiple == 0) return abort();
      if (write && d.read_only) return abort();
      uint64_t lba;
      uint32_t sectors;
      if (!address(ext, lba, sectors)) return abort(error::kIdnf | error::kAbrt);
      command_ = std::make_unique<Command>();
      command_->type = write ? Command::Type::kAtaWrite : Command::Type::kAtaRead;
      command_->dma = dma;
      command_->fua = !d.disk.write_cache;
      command_->lba = lba;
      command_->left = sectors;
      command_->block_sectors = multiple ? d.disk.multiple : 1;
      if (dma) {
        phase_ = Phase::kDmaWaiting;
        d.status = status::kBsy | status::kDrdy;
        if (bm_command_ & kBmStart) start_dma();
        return;
      }
      if (!write) return ata_read_chunk();
      use_buffer(std::make_shared<std::vector<uint8_t>>(std::min<uint64_t>(command_->block_sectors, sectors) * kSectorSize));
      pos_ = 0;
      end_ = buffer_->size();
      phase_ = Phase::kPioOut;
      d.status = kIdle | status::kDrq;  // the first block: no interrupt
      return;
    }
    case cmd::kReadVerify: case cmd::kReadVerifyNoRetry: case cmd::kReadVerifyExt: {
      uint64_t lba;
      uint32_t sectors;
      if (!address(ext, lba, sectors)) return abort(error::kIdnf | error::kAbrt);
      return finish(kIdle);
    }
    case cmd::kFlushCache:
    case cmd::kFlushCacheExt:
      return flush();
    case cmd::kSetMultiple: {
      const uint8_t n = d.tf.count;
      if (n > kMaxMultiple || (n & (n - 1))) return abort();
      d.disk.multiple = n;
      return finish(kIdle);
    }
    case cmd::kInitializeParameters: {
      const uint16_t heads = static_cast<uint16_t>((device_ & 0x0f) + 1), sectors = d.tf.count;
      if (sectors == 0) return abort();
      const uint64_t cylinders = std::clamp<uint64_t>(d.disk.sectors / (heads * sectors), 1, 16383);
      d.disk.current = {static_cast<uint16_t>(cylinders), heads, sectors};
      return finish(kIdle);
    }
    case cmd::kReadNativeMax:
    case cmd::kReadNativeMaxExt: {
      const uint64_t max = d.disk.sectors - 1;
      d.tf.lba_low = static_cast<uint8_t>(max);
      d.tf.lba_mid = static_cast<uint8_t>(max >> 8);
      d.tf.lba_high = static_cast<uint8_t>(max >> 16);
      if (opcode == cmd::kReadNativeMaxExt) {
        d.tf.hob_lba_low = static_cast<uint8_t>(max >> 24);
        d.tf.hob_lba_mid = static_cast<uint8_t>(max >> 32);
        d.tf.hob_lba_high = static_cast<uint8_t>(max >> 40);
      } else {
        device_ = static_cast<uint8_t>((device_ & 0xf0) | ((std::min<uint64_t>(max, 0x0fffffff) >> 24) & 0x0f));
      }
      return finish(kIdle);
    }
    case cmd::kSetFeatures:
      return set_features();
    case cmd::kExecuteDiagnostic:
      reset_drives();
      return finish(kIdle);
    case cmd::kCheckPowerMode:
      d.tf.count = 0xff;  // active or idle
      return finish(kIdle);
    case cmd::kRecalibrate: case cmd::kSeek: case cmd::kIdleImmediate: case cmd::kIdle:
    case cmd::kStandbyImmediate: case cmd::kStandby: case cmd::kSleep:
      return finish(kIdle);
    default:  // including NOP, whose defined result is ABRT
      return abort();
  }
}

void IdeChannel::flush() {
  phase_ = Phase::kBusy;
  active().status = status::kBsy | status::kDrdy;
  io(IoStep::kFlush, [](BlockBackend& b, BlockBackend::Done done) { b.flush(std::move(done)); },
     [this](int64_t result) {
       if (result < 0) {
         ++counters_.io_errors;
         return abort();
       }
       finish(kIdle);
     });
}

void IdeChannel::set_features() {
  IdeDrive& d = active();
  TransferMode& mode = d.kind == IdeDrive::Kind::kCdrom ? d.cd.mode : d.disk.mode;
  switch (d.tf.feature) {
    case feature::kSetTransferMode:
      if (!valid_transfer_mode(d.tf.count)) return abort();
      mode.value = d.tf.count <= 0x01 ? 0x0c : d.tf.count;
      break;
    case feature::kEnableWriteCache:
    case feature::kDisableWriteCache:
      if (d.kind != IdeDrive::Kind::kDisk) return abort();
      d.disk.write_cache = d.tf.feature == feature::kEnableWriteCache;
      break;
    case feature::kEnableReadLookAhead:
    case feature::kDisableReadLookAhead:
    case feature::kEnableRevertToDefaults:
    case feature::kDisableRevertToDefaults:
      break;
    default:
      return abort();
  }
  finish(kIdle);
}

// --- PIO ---------------------------------------------------------------------------------------

void IdeChannel::start_pio_in(std::shared_ptr<std::vector<uint8_t>> data, size_t block_bytes) {
  use_buffer(std::move(data));
  block_bytes_ = block_bytes;
  pos_ = block_start_ = 0;
  end_ = std::min(block_bytes_, buffer_->size());
  phase_ = Phase::kPioIn;
  active().status = kIdle | status::kDrq;
  raise_irq();
}

void IdeChannel::read_data(std::span<uint8_t> bytes) {
  size_t at = 0;
  while (at < bytes.size()) {
    if (phase_ != Phase::kPioIn || !buffer_ || pos_ >= end_) {
      ++counters_.stray_data;
      std::fill(bytes.begin() + static_cast<ptrdiff_t>(at), bytes.end(), 0);
      return;
    }
    const size_t n = std::min(bytes.size() - at, end_ - pos_);
    std::memcpy(bytes.data() + at, buffer_->data() + pos_, n);
    at += n;
    pos_ += n;
    if (pos_ == end_) {
      pio_block_done();
      // A word that straddles the end of an odd-length ATAPI block carries padding.
      if (at % 2 && at < bytes.size()) bytes[at++] = 0;
    }
  }
}

void IdeChannel::write_data(std::span<const uint8_t> bytes) {
  size_t at = 0;
  while (at < bytes.size()) {
    if ((phase_ != Phase::kPioOut && phase_ != Phase::kPacket) || !buffer_ || pos_ >= end_) {
      ++counters_.stray_data;
      return;
    }
    const size_t n = std::min(bytes.size() - at, end_ - pos_);
    written_from_ = std::min(written_from_, pos_);
    std::memcpy(buffer_->data() + pos_, bytes.data() + at, n);
    at += n;
    pos_ += n;
    if (pos_ < end_) continue;
    if (phase_ == Phase::kPacket) {
      packet_received();
    } else {
      ata_write_block_done();
    }
  }
}

void IdeChannel::pio_block_done() {
  if (!command_) return;
  switch (command_->type) {
    case Command::Type::kData:  // IDENTIFY: one block
      phase_ = Phase::kIdle;
      command_.reset();
      active().status = kIdle;
      return;
    case Command::Type::kPacket:
      return atapi_next_block();
    case Command::Type::kAtaRead: {
      const uint64_t sectors = (end_ - block_start_) / kSectorSize;
      command_->lba += sectors;
      command_->left -= sectors;
      if (command_->left == 0) {  // the last block: no interrupt after it
        phase_ = Phase::kIdle;
        command_.reset();
        buffer_.reset();
        active().status = kIdle;
        return;
      }
      if (end_ < buffer_->size()) {
        block_start_ = end_;
        end_ = std::min(end_ + block_bytes_, buffer_->size());
        active().status = kIdle | status::kDrq;
        raise_irq();
        return;
      }
      return ata_read_chunk();
    }
    case Command::Type::kAtaWrite:
      return;
  }
}

void IdeChannel::ata_read_chunk() {
  const uint64_t sectors = std::min<uint64_t>(command_->left, kChunkSectors);
  auto data = std::make_shared<std::vector<uint8_t>>(sectors * kSectorSize);
  phase_ = Phase::kBusy;
  active().status = status::kBsy | status::kDrdy;
  const uint64_t offset = command_->lba * kSectorSize;
  io(IoStep::kAtaRead,
     [data, offset](BlockBackend& b, BlockBackend::Done done) {
       b.read(offset, {{data->data(), data->size()}}, std::move(done));
     },
     [this, data](int64_t result) {
       if (result < 0) {
         ++counters_.io_errors;
         return abort(error::kUnc | error::kAbrt);
       }
       start_pio_in(data, command_->block_sectors * kSectorSize);
     });
}

void IdeChannel::ata_write_block_done() {
  phase_ = Phase::kBusy;
  active().status = status::kBsy | status::kDrdy;
  auto data = buffer_;
  const uint64_t offset = command_->lba * kSectorSize;
  const bool fua = command_->fua;
  io(IoStep::kAtaWrite,
     [data, offset, fua](BlockBackend& b, BlockBackend::Done done) {
       b.write(offset, {{data->data(), data->size()}}, fua, std::move(done));
     },
     [this, data](int64_t result) {
       if (result < 0) {
         ++counters_.io_errors;
         return abort();
       }
       const uint64_t sectors = data->size() / kSectorSize;
       command_->lba += sectors;
       command_->left -= sectors;
       if (command_->left == 0) return finish(kIdle);
       use_buffer(std::make_shared<std::vector<uint8_t>>(
           std::min<uint64_t>(command_->block_sectors, command_->left) * kSectorSize));
       pos_ = 0;
       end_ = buffer_->size();
       phase_ = Phase::kPioOut;
       active().status = kIdle | status::kDrq;
       raise_irq();
     });
}

// --- DMA ---------------------------------------------------------------------------------------

bool IdeChannel::guest_read(uint64_t address, void* out, size_t length) const {
  std::vector<vhost_user::HostRange> ranges;
  if (!dma_.memory || !dma_.memory->gpa_to_ranges(address, length, ranges)) return false;
  auto* to = static_cast<uint8_t*>(out);
  for (const auto& r : ranges) to = std::copy(r.data, r.data + r.size, to);
  return true;
}

bool IdeChannel::dma_iovecs(uint64_t length, std::vector<iovec>& iov, bool& longer) {
  if (!dma_.memory || !dma_.bus_master) {
    ++counters_.dma_refused;
    return false;
  }
  PrdTable table = walk_prd_table(prd_table_, length, [this](uint64_t a, void* out, size_t n) {
    return guest_read(a, out, n);
  });
  if (table.status == PrdTable::Status::kShort) {
    ++counters_.dma_short;
    return false;
  }
  // The table, or a buffer it names, outside guest RAM (the BAR window, the PCI hole), or
  // more pieces than one vectored transfer takes.
  std::vector<vhost_user::HostRange> ranges;
  bool usable = table.status == PrdTable::Status::kOk;
  for (const PrdRegion& r : table.regions) usable = usable && dma_.memory->gpa_to_ranges(r.address, r.bytes, ranges);
  if (!usable || ranges.size() > IOV_MAX) {
    ++counters_.dma_refused;
    return false;
  }
  for (const auto& r : ranges) iov.push_back({r.data, r.size});
  longer = table.longer;
  return true;
}

void IdeChannel::start_dma() {
  IdeDrive& d = active();
  Command& c = *command_;
  const bool to_memory = c.type != Command::Type::kAtaWrite;
  // An ATAPI command's emulated data (its reply) waits in the buffer; a READ's comes from the image.
  const bool emulated = c.type == Command::Type::kPacket && buffer_;
  const uint64_t length = c.type == Command::Type::kPacket ? (emulated ? buffer_->size() : c.left * Cdrom::kBlockSize)
                                                           : c.left * kSectorSize;
  std::vector<iovec> iov;
  bool longer = false;
  if (to_memory != static_cast<bool>(bm_command_ & kBmToMemory) || !dma_iovecs(length, iov, longer)) {
    bm_status_ = static_cast<uint8_t>((bm_status_ | kBmError) & ~kBmActive);
    if (d.kind == IdeDrive::Kind::kCdrom) {
      d.cdrom->fail({0x04, 0x08, 0x00});  // hardware error: communication failure
      return atapi_check();
    }
    return abort();
  }
  phase_ = Phase::kDmaRunning;
  auto ended = [this, longer](int64_t result) {
    if (result < 0) {
      ++counters_.io_errors;
      bm_status_ &= static_cast<uint8_t>(~kBmActive);
      if (active().kind == IdeDrive::Kind::kCdrom) {
        active().cdrom->fail({0x03, 0x11, 0x00});  // unrecovered read error
        return atapi_check();
      }
      return abort(command_->type == Command::Type::kAtaRead ? error::kUnc | error::kAbrt : error::kAbrt);
    }
    if (!longer) bm_status_ &= static_cast<uint8_t>(~kBmActive);  // a longer table leaves the engine active
    if (active().kind == IdeDrive::Kind::kCdrom) return atapi_complete();
    finish(kIdle);
  };
  if (emulated) {
    const uint8_t* from = buffer_->data();
    for (const iovec& v : iov) {
      std::memcpy(v.iov_base, from, v.iov_len);
      from += v.iov_len;
    }
    return ended(0);
  }
  const uint64_t offset = c.type == Command::Type::kPacket ? c.lba * Cdrom::kBlockSize : c.lba * kSectorSize;
  const bool write = c.type == Command::Type::kAtaWrite, fua = c.fua;
  io(IoStep::kDma,
     [iov = std::move(iov), offset, write, fua](BlockBackend& b, BlockBackend::Done done) mutable {
       if (write) {
         b.write(offset, std::move(iov), fua, std::move(done));
       } else {
         b.read(offset, std::move(iov), std::move(done));
       }
     },
     ended);
}

// --- ATAPI -------------------------------------------------------------------------------------

uint32_t IdeChannel::atapi_byte_limit() const {
  uint32_t limit = command_->byte_limit & ~1u;  // whole words, never more than asked (CVE-2015-5154)
  return limit ? limit : 0xfffe;
}

void IdeChannel::packet_received() {
  IdeDrive& d = active();
  std::array<uint8_t, Cdrom::kPacketSize> cdb;
  std::copy(buffer_->begin(), buffer_->end(), cdb.begin());
  buffer_.reset();
  Cdrom::Reply reply = d.cdrom->execute(cdb);
  switch (reply.kind) {
    case Cdrom::Reply::Kind::kCheck:
      return atapi_check();
    case Cdrom::Reply::Kind::kData:
      if (reply.data.empty()) return atapi_complete();
      use_buffer(std::make_shared<std::vector<uint8_t>>(std::move(reply.data)));
      pos_ = end_ = 0;
      if (command_->dma) break;
      return atapi_next_block();
    case Cdrom::Reply::Kind::kRead:
      command_->lba = reply.lba;
      command_->left = reply.blocks;
      if (!command_->dma) return atapi_read_chunk();
      break;
  }
  phase_ = Phase::kDmaWaiting;
  d.status = status::kBsy | status::kDrdy;
  if (bm_command_ & kBmStart) start_dma();
}

void IdeChannel::atapi_read_chunk() {
  const uint64_t blocks = std::min<uint64_t>(command_->left, kChunkCdBlocks);
  auto data = std::make_shared<std::vector<uint8_t>>(blocks * Cdrom::kBlockSize);
  phase_ = Phase::kBusy;
  active().status = status::kBsy | status::kDrdy;
  const uint64_t offset = command_->lba * Cdrom::kBlockSize;
  io(IoStep::kAtapiRead,
     [data, offset](BlockBackend& b, BlockBackend::Done done) {
       b.read(offset, {{data->data(), data->size()}}, std::move(done));
     },
     [this, data, blocks](int64_t result) {
       if (result < 0) {
         ++counters_.io_errors;
         active().cdrom->fail({0x03, 0x11, 0x00});  // unrecovered read error
         return atapi_check();
       }
       command_->lba += blocks;
       command_->left -= blocks;
       use_buffer(data);
       pos_ = end_ = 0;
       atapi_next_block();
     });
}

void IdeChannel::atapi_next_block() {
  const size_t available = buffer_ ? buffer_->size() - end_ : 0;
  if (available == 0) {
    if (command_->left > 0) return atapi_read_chunk();
    return atapi_complete();
  }
  const size_t bytes = std::min<size_t>(available, atapi_byte_limit());
  pos_ = end_;
  end_ += bytes;
  TaskFile& tf = active().tf;
  tf.lba_mid = static_cast<uint8_t>(bytes);
  tf.lba_high = static_cast<uint8_t>(bytes >> 8);
  tf.count = kReasonIn;
  phase_ = Phase::kPioIn;
  active().status = kIdle | status::kDrq;
  raise_irq();
}

void IdeChannel::atapi_complete() {
  active().tf.count = kReasonCommand | kReasonIn;
  finish(kIdle);
}

void IdeChannel::atapi_check() {
  active().error = static_cast<uint8_t>(active().cdrom->sense().key << 4);
  active().tf.count = kReasonCommand | kReasonIn;
  finish(kIdle | status::kErr);
}

// --- Crash recovery ----------------------------------------------------------------------------

void IdeChannel::keep_state_in(std::span<uint8_t> bulk) {
  bulk_ = bulk.first(kBulkBytes);
  hold_io_ = true;
}

IdeChannel::Saved IdeChannel::save() {
  Saved s{};
  for (int i = 0; i < 2; ++i) {
    const IdeDrive& d = drives_[i];
    Saved::Drive& out = s.drives[i];
    out.kind = static_cast<uint8_t>(d.kind);
    out.status = d.status;
    out.error = d.error;
    out.multiple = d.disk.multiple;
    out.write_cache = d.disk.write_cache;
    out.mode = d.kind == IdeDrive::Kind::kCdrom ? d.cd.mode.value : d.disk.mode.value;
    out.tf = d.tf;
    out.current = d.disk.current;
    if (d.cdrom) out.cdrom = d.cdrom->state();
  }
  s.device = device_, s.control = control_, s.bm_command = bm_command_, s.bm_status = bm_status_;
  s.irq_pending = irq_pending_;
  s.prd_table = prd_table_;
  s.phase = static_cast<uint8_t>(phase_);
  s.active = static_cast<uint8_t>(active_);
  s.waiting_for = static_cast<uint8_t>(waiting_for_);
  if (command_) {
    s.has_command = 1;
    s.command_type = static_cast<uint8_t>(command_->type);
    s.command_dma = command_->dma, s.command_fua = command_->fua;
    s.block_sectors = command_->block_sectors, s.byte_limit = command_->byte_limit;
    s.lba = command_->lba, s.left = command_->left;
  }
  if (buffer_) {
    if (buffer_->size() > kBufferBytes) throw std::logic_error("an IDE buffer larger than its slot");
    // A new buffer goes to the slot the last commit does not refer to; the guest's PIO writes
    // into the current one go where no commit looked yet (past its position then).
    if (saved_buffer_ != buffer_number_) {
      slot_ ^= 1;
      std::memcpy(&bulk_[slot_ * kBufferBytes], buffer_->data(), buffer_->size());
      saved_buffer_ = buffer_number_;
    } else if (written_from_ < pos_) {
      std::memcpy(&bulk_[slot_ * kBufferBytes + written_from_], buffer_->data() + written_from_, pos_ - written_from_);
    }
    s.has_buffer = 1;
    s.buffer_slot = static_cast<uint8_t>(slot_);
    s.buffer_size = static_cast<uint32_t>(buffer_->size());
    s.pos = static_cast<uint32_t>(pos_), s.end = static_cast<uint32_t>(end_);
    s.block_start = static_cast<uint32_t>(block_start_), s.block_bytes = static_cast<uint32_t>(block_bytes_);
  }
  written_from_ = SIZE_MAX;
  return s;
}

void IdeChannel::release_io() {
  std::vector<std::function<void()>> held = std::move(held_io_);
  held_io_.clear();
  for (auto& issue : held) issue();
}

void IdeChannel::validate(const Saved& s) const {
  auto check = [](bool ok, const char* what) {
    if (!ok) throw InputError(std::string("the saved IDE channel state is inconsistent: ") + what);
  };
  for (int i = 0; i < 2; ++i) {
    const Saved::Drive& d = s.drives[i];
    check(d.kind == static_cast<uint8_t>(drives_[i].kind), "it is for other drives");
    check(d.multiple <= kMaxMultiple && (d.multiple & (d.multiple - 1)) == 0 && d.write_cache <= 1, "a drive setting");
  }
  check(s.irq_pending <= 1 && s.phase <= static_cast<uint8_t>(Phase::kDmaRunning) && s.active <= 1 &&
            s.waiting_for <= static_cast<uint8_t>(IoStep::kDma),
        "a register out of range");
  const Phase phase = static_cast<Phase>(s.phase);
  const IoStep step = static_cast<IoStep>(s.waiting_for);
  const IdeDrive& active = drives_[s.active];
  check(phase == Phase::kIdle || active.kind != IdeDrive::Kind::kNone, "a command on an absent drive");
  // The I/O waited for matches the phase: the image (kBusy) or a DMA transfer (kDmaRunning).
  if (phase == Phase::kBusy)
    check(step != IoStep::kNone && step != IoStep::kDma, "a busy channel waiting for nothing");
  else
    check(step == (phase == Phase::kDmaRunning ? IoStep::kDma : IoStep::kNone), "I/O in the wrong phase");
  const bool needs_command = phase == Phase::kPioOut || phase == Phase::kPacket || phase == Phase::kDmaWaiting ||
                             phase == Phase::kDmaRunning || (phase == Phase::kBusy && step != IoStep::kFlush);
  check(s.has_command <= 1 && (s.has_command || !needs_command), "a transfer without its command");
  if (s.has_command) {
    check(s.command_type <= static_cast<uint8_t>(Command::Type::kPacket) && s.command_dma <= 1 && s.command_fua <= 1,
          "a command field out of range");
    const auto type = static_cast<Command::Type>(s.command_type);
    const bool ata = type == Command::Type::kAtaRead || type == Command::Type::kAtaWrite;
    if (ata)
      check(active.kind == IdeDrive::Kind::kDisk && s.lba <= active.disk.sectors &&
                s.left <= active.disk.sectors - s.lba && s.block_sectors >= 1 && s.block_sectors <= kMaxMultiple,
            "a disk transfer beyond the disk");
    if (type == Command::Type::kPacket)
      check(active.kind == IdeDrive::Kind::kCdrom && s.lba <= s.drives[s.active].cdrom.blocks &&
                s.left <= s.drives[s.active].cdrom.blocks - s.lba,
            "a CD-ROM read beyond the medium");
    if (step == IoStep::kAtaRead || step == IoStep::kAtaWrite) check(ata, "disk I/O for another command");
    if (step == IoStep::kAtapiRead) check(type == Command::Type::kPacket, "CD-ROM I/O for another command");
    if (phase == Phase::kPioOut) check(type == Command::Type::kAtaWrite, "PIO out for another command");
    if (phase == Phase::kPacket) check(type == Command::Type::kPacket, "a packet for another command");
    if (phase == Phase::kDmaWaiting || phase == Phase::kDmaRunning) check(type != Command::Type::kData, "DMA for no transfer");
  }
  const bool needs_buffer = phase == Phase::kPioIn || phase == Phase::kPioOut || phase == Phase::kPacket ||
                            step == IoStep::kAtaWrite;
  check(s.has_buffer <= 1 && (s.has_buffer || !needs_buffer), "a PIO transfer without its buffer");
  if (s.has_buffer)
    check(s.buffer_slot <= 1 && s.buffer_size <= kBufferBytes && s.end <= s.buffer_size && s.pos <= s.end &&
              s.block_start <= s.end && s.block_bytes <= kBufferBytes,
          "a buffer position out of range");
  if (step == IoStep::kAtaWrite) check(s.pos == s.buffer_size && s.buffer_size % kSectorSize == 0, "a partial block write");
  // A disk transfer's buffer never holds more sectors than the command has left from its block on.
  const bool disk_buffer = s.has_command && (phase == Phase::kPioOut || step == IoStep::kAtaWrite ||
                                             (phase == Phase::kPioIn && s.command_type == static_cast<uint8_t>(Command::Type::kAtaRead)));
  if (disk_buffer) check((s.buffer_size - s.block_start) / kSectorSize <= s.left && s.block_bytes % kSectorSize == 0, "a buffer beyond the transfer");
  if (step == IoStep::kAtaRead || step == IoStep::kAtaWrite || step == IoStep::kAtapiRead) check(s.left > 0, "I/O with nothing left");
}

void IdeChannel::restore(const Saved& s) {
  if (bulk_.empty()) throw InputError("an IDE channel restored without its state page");
  validate(s);
  for (int i = 0; i < 2; ++i) {
    IdeDrive& d = drives_[i];
    const Saved::Drive& in = s.drives[i];
    d.status = in.status;
    d.error = in.error;
    d.tf = in.tf;
    d.disk.multiple = in.multiple;
    d.disk.write_cache = in.write_cache;
    d.disk.current = in.current;
    (d.kind == IdeDrive::Kind::kCdrom ? d.cd.mode : d.disk.mode).value = in.mode;
    if (d.cdrom) d.cdrom->restore(in.cdrom, d.backend ? d.backend->size() : 0);
  }
  device_ = s.device, control_ = s.control, bm_command_ = s.bm_command, bm_status_ = s.bm_status;
  irq_pending_ = s.irq_pending;
  prd_table_ = s.prd_table;
  phase_ = static_cast<Phase>(s.phase);
  active_ = s.active;
  waiting_for_ = static_cast<IoStep>(s.waiting_for);
  command_.reset();
  if (s.has_command) {
    command_ = std::make_unique<Command>();
    command_->type = static_cast<Command::Type>(s.command_type);
    command_->dma = s.command_dma, command_->fua = s.command_fua;
    command_->block_sectors = s.block_sectors, command_->byte_limit = s.byte_limit;
    command_->lba = s.lba, command_->left = s.left;
  }
  buffer_.reset();
  pos_ = end_ = block_start_ = block_bytes_ = 0;
  if (s.has_buffer) {
    const uint8_t* from = &bulk_[s.buffer_slot * kBufferBytes];
    use_buffer(std::make_shared<std::vector<uint8_t>>(from, from + s.buffer_size));
    slot_ = s.buffer_slot;
    saved_buffer_ = buffer_number_;
    pos_ = s.pos, end_ = s.end, block_start_ = s.block_start, block_bytes_ = s.block_bytes;
  }
}

void IdeChannel::resume() {
  irq_.resume_level(irq_pending_ && !(control_ & control::kNien));
  switch (waiting_for_) {
    case IoStep::kNone: return;
    case IoStep::kFlush: return flush();
    case IoStep::kAtaRead: return ata_read_chunk();
    case IoStep::kAtaWrite: return ata_write_block_done();
    case IoStep::kAtapiRead: return atapi_read_chunk();
    case IoStep::kDma: return start_dma();
  }
}

}  // namespace bulkhead::device
