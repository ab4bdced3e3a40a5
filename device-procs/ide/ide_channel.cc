#include "device-procs/ide/ide_channel.h"

#include <algorithm>
#include <climits>
#include <cstring>

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
  std::vector<uint8_t> reply;  // ATAPI: emulated data, for DMA
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

void IdeChannel::io(std::function<void(BlockBackend&, BlockBackend::Done)> op, std::function<void(int64_t)> then) {
  const uint64_t generation = generation_;
  BlockBackend& backend = *active().backend;
  op(backend, [this, generation, then = std::move(then)](int64_t result) {
    if (generation == generation_) then(result);
  });
  backend.submit();
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
        buffer_ = std::make_shared<std::vector<uint8_t>>(Cdrom::kPacketSize);
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
      buffer_ = std::make_shared<std::vector<uint8_t>>(std::min<uint64_t>(command_->block_sectors, sectors) * kSectorSize);
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
      phase_ = Phase::kBusy;
      d.status = status::kBsy | status::kDrdy;
      return io([](BlockBackend& b, BlockBackend::Done done) { b.flush(std::move(done)); },
                [this](int64_t result) {
                  if (result < 0) {
                    ++counters_.io_errors;
                    return abort();
                  }
                  finish(kIdle);
                });
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
  buffer_ = std::move(data);
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
  io([data, offset](BlockBackend& b, BlockBackend::Done done) {
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
  io([data, offset, fua](BlockBackend& b, BlockBackend::Done done) {
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
       buffer_ = std::make_shared<std::vector<uint8_t>>(
           std::min<uint64_t>(command_->block_sectors, command_->left) * kSectorSize);
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
  const uint64_t length = c.type == Command::Type::kPacket ? (c.reply.empty() ? c.left * Cdrom::kBlockSize : c.reply.size())
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
  if (c.type == Command::Type::kPacket && !c.reply.empty()) {  // emulated data: a copy
    const uint8_t* from = c.reply.data();
    for (const iovec& v : iov) {
      std::memcpy(v.iov_base, from, v.iov_len);
      from += v.iov_len;
    }
    return ended(0);
  }
  const uint64_t offset = c.type == Command::Type::kPacket ? c.lba * Cdrom::kBlockSize : c.lba * kSectorSize;
  const bool write = c.type == Command::Type::kAtaWrite, fua = c.fua;
  io([iov = std::move(iov), offset, write, fua](BlockBackend& b, BlockBackend::Done done) mutable {
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
      if (command_->dma) {
        command_->reply = std::move(reply.data);
        break;
      }
      buffer_ = std::make_shared<std::vector<uint8_t>>(std::move(reply.data));
      pos_ = end_ = 0;
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
  io([data, offset](BlockBackend& b, BlockBackend::Done done) {
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
       buffer_ = data;
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

}  // namespace bulkhead::device
